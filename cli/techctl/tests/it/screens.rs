//! The screens in a real browser (Debian's headless `chromium`, driven by
//! `chromium-driver` over WebDriver) against `techctl dev`, as people use
//! them: a guest orders two items at the kiosk and pays the QR; the cook
//! moves the ticket on the kitchen display while the pickup board follows
//! it; a second order is refused by Mercado Pago after the kiosk lost its
//! connection for a while; an admin takes a product off the menu and the
//! kiosk stops offering it.
//!
//! Screenshots of every screen, the kiosk's first-load bytes and the
//! accessibility check (axe-core, run in the same browser) are written to
//! the folder the test prints.
//!
//! Needs `apt-get install chromium chromium-driver`, PostgreSQL's server
//! binaries and axe-core in `.venv/axe` (`scripts/test.sh` installs it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::browser::Browser;

use crate::dev::{Dev, START_WITHIN, free_block, pay, repository};

const KIOSK: (u32, u32) = (1080, 1600);
const DESKTOP: (u32, u32) = (1366, 900);
/// What a kiosk may download before it shows anything: HTML, CSS and JS,
/// compressed.
const FIRST_LOAD_BUDGET: u64 = 100 * 1024;

struct Shots {
    dir: PathBuf,
    taken: usize,
}

impl Shots {
    fn new() -> Shots {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screens");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Shots { dir, taken: 0 }
    }

    fn take(&mut self, browser: &Browser, name: &str) {
        self.taken += 1;
        browser.screenshot(&self.dir.join(format!("{:02}-{name}.png", self.taken)));
    }
}

/// The id of the last order the kiosk page looked at, from the requests it
/// made (the page keeps no test hooks).
fn order_id_seen(kiosk: &Browser) -> String {
    kiosk.wait(
        "the kiosk to follow its order",
        Duration::from_secs(30),
        |b| {
            b.script(
                "const ids = performance.getEntriesByType('resource')
               .map((e) => (e.name.match(/\\/orders\\/([0-9a-f-]{36})/) || [])[1])
               .filter(Boolean);
             return ids.length ? ids[ids.length - 1] : null;",
                json!([]),
            )
            .as_str()
            .map(str::to_string)
        },
    )
}

fn log_in(browser: &Browser, email: &str, password: &str) {
    browser.type_into("#login-email", email);
    browser.type_into("#login-password", password);
    browser.click("form.login button[type=submit]");
}

/// The numbers a list of the pickup board shows.
fn board(browser: &Browser, list: &str) -> Vec<String> {
    browser
        .text(list)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The controls shown now that are smaller than a 44 px touch target.
fn small_targets(browser: &Browser) -> Vec<Value> {
    let found = browser.script(
        "return [...document.querySelectorAll('button, input, select, textarea, a[href]')]
           .filter((e) => e.offsetParent !== null)
           .map((e) => { const r = e.getBoundingClientRect();
                         return [e.id || e.textContent.trim().slice(0, 30), r.width, r.height]; })
           .filter(([, w, h]) => w < 44 || h < 44);",
        json!([]),
    );
    found.as_array().cloned().unwrap_or_default()
}

/// axe-core's violations on the page as it is now.
fn accessibility(browser: &Browser, axe: &str) -> Vec<Value> {
    let loaded = browser.script(
        &format!("{axe}\n;window.axe = window.axe || axe; return typeof window.axe.run;"),
        json!([]),
    );
    assert_eq!(loaded, json!("function"), "axe-core did not load");
    let found = browser.script_async(
        "const done = arguments[arguments.length - 1];
         axe.run(document, { resultTypes: ['violations'] })
           .then((r) => done(r.violations.map((v) => ({
             id: v.id, impact: v.impact, help: v.help,
             nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3),
           }))))
           .catch((e) => done({ error: String(e) }));",
        json!([]),
    );
    found
        .as_array()
        .unwrap_or_else(|| panic!("axe-core failed: {found}"))
        .clone()
}

fn axe_source() -> String {
    let path = repository().join(".venv/axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; scripts/test.sh installs axe-core there (or: npm install --prefix .venv/axe axe-core@4)",
            path.display()
        )
    })
}

/// The kiosk's first load as the browser fetched it: each file's
/// compressed and plain bytes.
fn first_load(kiosk: &Browser) -> Vec<(String, u64, u64)> {
    let entries = kiosk.script(
        "const all = [performance.getEntriesByType('navigation')[0],
                      ...performance.getEntriesByType('resource')];
         return all.map((e) => [new URL(e.name).pathname, e.encodedBodySize, e.decodedBodySize]);",
        json!([]),
    );
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_u64().unwrap(),
                e[2].as_u64().unwrap(),
            )
        })
        .filter(|(path, _, _)| path.starts_with("/screens/"))
        .collect()
}

#[test]
fn people_order_cook_call_and_edit_the_menu_on_the_screens() {
    let axe = axe_source();
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    // As root, PostgreSQL runs as its own user, who must reach the folder.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let base = free_block();
    let mut dev = Dev::start(dir, base, &["--source", repository().to_str().unwrap()]);
    dev.wait_output("techctl dev is up", START_WITHIN);
    let gateway = format!("http://127.0.0.1:{base}");
    let output = dev.output();
    for url in [
        format!("kiosk       {gateway}/screens/kiosk?pos=TOTEM01"),
        format!("kitchen     {gateway}/screens/kitchen"),
        format!("pickup      {gateway}/screens/pickup"),
        format!("admin       {gateway}/screens/admin"),
    ] {
        assert!(output.contains(&url), "no {url:?} in:\n{output}");
    }
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".techctl/local.json")).unwrap())
            .unwrap();
    let email = credentials["employee_email"].as_str().unwrap();
    let password = credentials["employee_password"].as_str().unwrap();
    let mut shots = Shots::new();
    let mut report = String::new();
    let mut serious = Vec::new();
    let mut check = |browser: &Browser, screen: &str, report: &mut String| {
        let found = accessibility(browser, &axe);
        report.push_str(&format!(
            "axe-core on {screen}: {} violations\n",
            found.len()
        ));
        for v in &found {
            report.push_str(&format!(
                "  {} ({}): {} {}\n",
                v["id"], v["impact"], v["help"], v["nodes"]
            ));
            if matches!(v["impact"].as_str(), Some("serious" | "critical")) {
                serious.push(format!("{screen}: {v}"));
            }
        }
        for small in small_targets(browser) {
            serious.push(format!("{screen}: a control under 44 px: {small}"));
        }
    };

    // The kiosk's first load, measured as the browser fetched it.
    let kiosk = Browser::start(KIOSK.0, KIOSK.1);
    kiosk.goto(&format!("{gateway}/?pos=TOTEM01"));
    kiosk.find("#begin");
    kiosk.wait("the page to load", Duration::from_secs(10), |b| {
        (b.script("return document.readyState", json!([])) == json!("complete")).then_some(())
    });
    let loaded = first_load(&kiosk);
    let total: u64 = loaded.iter().map(|(_, compressed, _)| compressed).sum();
    report.push_str("kiosk's first load (compressed / plain bytes):\n");
    for (path, compressed, plain) in &loaded {
        report.push_str(&format!("  {path:<32} {compressed:>7} {plain:>7}\n"));
    }
    report.push_str(&format!(
        "  total {total} bytes of a {FIRST_LOAD_BUDGET} budget\n"
    ));
    assert!(loaded.len() >= 5, "{loaded:?}");
    assert!(total <= FIRST_LOAD_BUDGET, "{report}");
    kiosk.script("performance.setResourceTimingBufferSize(100000)", json!([]));
    shots.take(&kiosk, "kiosk-start");
    check(&kiosk, "kiosk start", &mut report);

    // A guest orders two items, one with a note; the first step by keyboard.
    kiosk.press("\u{E004}"); // Tab
    assert_eq!(kiosk.focused(), "begin");
    kiosk.press("\u{E007}"); // Enter
    kiosk.find("#products li:nth-child(2) button");
    let first = kiosk.text("#products li:nth-child(1) h3");
    let second = kiosk.text("#products li:nth-child(2) h3");
    kiosk.click("#products li:nth-child(1) button");
    kiosk.click("#products li:nth-child(2) button");
    kiosk.type_into("#cart-items li:first-child input", "sem cebola");
    kiosk.wait_text("#cart-items", &second, Duration::from_secs(5));
    shots.take(&kiosk, "kiosk-menu-and-cart");
    check(&kiosk, "kiosk menu", &mut report);
    kiosk.click("#to-identify");

    // A CPF with a wrong check digit is refused before it is sent.
    kiosk.type_into("#cpf", "52998224724");
    kiosk.wait_text("#cpf-error", "CPF inválido", Duration::from_secs(5));
    assert_eq!(
        kiosk.script("return document.querySelector('#cpf').value", json!([])),
        json!("529.982.247-24"),
        "formatted as typed"
    );
    assert_eq!(
        kiosk.script(
            "return document.querySelector('#cpf-submit').disabled",
            json!([])
        ),
        json!(true)
    );
    kiosk.type_into("#cpf", "\u{E007}"); // Enter submits the form: nothing is sent.
    shots.take(&kiosk, "kiosk-invalid-cpf");
    check(&kiosk, "kiosk identification", &mut report);
    let token_calls = kiosk.script(
        "return performance.getEntriesByType('resource').filter((e) => e.name.includes('/auth/token')).length",
        json!([]),
    );
    assert_eq!(
        token_calls,
        json!(0),
        "an invalid CPF reached the user service"
    );
    kiosk.click("#guest");

    kiosk.find("#place");
    let summary = kiosk.text("#confirm-items");
    assert!(
        summary.contains(&first) && summary.contains("sem cebola"),
        "{summary}"
    );
    shots.take(&kiosk, "kiosk-confirm");
    kiosk.click("#place");

    // The QR code, drawn by the system, with its countdown.
    kiosk.find("#qr");
    kiosk.wait("the QR code to be drawn", Duration::from_secs(30), |b| {
        (b.script(
            "return document.querySelector('#qr').naturalWidth",
            json!([]),
        ) != json!(0))
        .then_some(())
    });
    kiosk.wait_text("#countdown", "expira em", Duration::from_secs(5));
    shots.take(&kiosk, "kiosk-qr");
    check(&kiosk, "kiosk payment", &mut report);
    let order_id = order_id_seen(&kiosk);
    pay(dir, &order_id, "--approve");
    kiosk.find("#order-number");
    let number = kiosk.text("#order-number").trim().to_string();
    assert!(number.parse::<u64>().is_ok(), "{number:?}");
    shots.take(&kiosk, "kiosk-paid");

    // The kitchen sees the ticket with its items and note.
    let kitchen = Browser::start(DESKTOP.0, DESKTOP.1);
    kitchen.goto(&format!("{gateway}/screens/kitchen"));
    shots.take(&kitchen, "kitchen-login");
    check(&kitchen, "kitchen login", &mut report);
    log_in(&kitchen, email, password);
    let received = kitchen.wait_text("#RECEIVED", &format!("#{number}"), Duration::from_secs(30));
    assert!(
        received.contains(&first) && received.contains("sem cebola"),
        "{received}"
    );
    shots.take(&kitchen, "kitchen-received");
    check(&kitchen, "kitchen display", &mut report);

    // The pickup board, open all along, shows the number being prepared.
    let pickup = Browser::start(DESKTOP.0, DESKTOP.1);
    pickup.goto(&format!("{gateway}/screens/pickup"));
    pickup.wait(
        "the number under Em preparo",
        Duration::from_secs(15),
        |b| board(b, "#preparing").contains(&number).then_some(()),
    );
    shots.take(&pickup, "pickup-preparing");
    check(&pickup, "pickup board", &mut report);

    // Another screen started the ticket while this display was cut off: its
    // stale button gets the production service's 409, shown plainly.
    kitchen.offline(true);
    kitchen.wait_text("#updated", "Sem conexão", Duration::from_secs(15));
    let staff = dev.ok(
        "POST",
        "/auth/employee/token",
        None,
        Some(json!({ "email": email, "password": password })),
    )["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The kiosk opened at `/?pos=TOTEM01` ordered as that point of sale.
    let order = dev.ok("GET", &format!("/orders/{order_id}"), Some(&staff), None);
    assert_eq!(order["point_of_sale"], "TOTEM01", "{order}");
    let tickets = dev.ok("GET", "/production", Some(&staff), None);
    let ticket = tickets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["order_number"].as_i64().map(|n| n.to_string()).as_deref() == Some(number.as_str())
        })
        .unwrap_or_else(|| panic!("no ticket {number} in {tickets}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    dev.ok(
        "PUT",
        &format!("/production/{ticket}/started"),
        Some(&staff),
        None,
    );
    kitchen.offline(false);
    kitchen.click(&format!(
        "button[aria-label=\"Iniciar preparo: pedido {number}\"]"
    ));
    kitchen.wait_text(
        "#error",
        &format!("Pedido {number} já está em preparo"),
        Duration::from_secs(10),
    );
    kitchen.wait_text(
        "#IN_PREPARATION",
        &format!("#{number}"),
        Duration::from_secs(10),
    );
    shots.take(&kitchen, "kitchen-conflict");

    // Ready: the board calls the number; delivered: it leaves the board.
    kitchen.click(&format!(
        "button[aria-label=\"Marcar pronto: pedido {number}\"]"
    ));
    kitchen.wait_text("#READY", &format!("#{number}"), Duration::from_secs(10));
    pickup.wait("the number under Pronto", Duration::from_secs(15), |b| {
        (board(b, "#ready").contains(&number) && !board(b, "#preparing").contains(&number))
            .then_some(())
    });
    shots.take(&pickup, "pickup-ready");
    kitchen.click(&format!("button[aria-label=\"Entregue: pedido {number}\"]"));
    pickup.wait(
        "the number to leave the board",
        Duration::from_secs(15),
        |b| {
            (!board(b, "#ready").contains(&number) && !board(b, "#preparing").contains(&number))
                .then_some(())
        },
    );
    shots.take(&pickup, "pickup-delivered");
    drop(pickup);

    // A second order: the kiosk loses its connection while showing the QR
    // (and says so), comes back, and Mercado Pago rejects the payment.
    // (The paid screen went back to the start by itself meanwhile.)
    kiosk.goto(&format!("{gateway}/?pos=TOTEM01"));
    kiosk.script("performance.setResourceTimingBufferSize(100000)", json!([]));
    kiosk.click("#begin");
    kiosk.click("#products li:nth-child(1) button");
    kiosk.click("#to-identify");
    kiosk.click("#guest");
    kiosk.click("#place");
    kiosk.find("#qr");
    let rejected_order = kiosk.wait("the second order", Duration::from_secs(30), |b| {
        Some(order_id_seen(b)).filter(|id| *id != order_id)
    });
    kiosk.offline(true);
    kiosk.find("#offline");
    shots.take(&kiosk, "kiosk-offline");
    check(&kiosk, "kiosk offline", &mut report);
    kiosk.offline(false);
    kiosk.wait(
        "the connection to come back",
        Duration::from_secs(30),
        |b| b.visible("#offline").is_none().then_some(()),
    );
    pay(dir, &rejected_order, "--reject");
    kiosk.wait_text(
        "#ended-title",
        "Pagamento recusado",
        Duration::from_secs(30),
    );
    shots.take(&kiosk, "kiosk-rejected");
    check(&kiosk, "kiosk rejection", &mut report);

    // The admin takes the first product off the menu; a field the product
    // service refuses is named next to it.
    let admin = Browser::start(DESKTOP.0, DESKTOP.1);
    admin.goto(&format!("{gateway}/screens/admin"));
    log_in(&admin, email, password);
    admin.click(&format!(
        "button[aria-label=\"Tirar do cardápio: {first}\"]"
    ));
    admin.wait_text(
        &format!("tr[data-product=\"{first}\"]"),
        "Fora do cardápio",
        Duration::from_secs(10),
    );
    shots.take(&admin, "admin-off-the-menu");
    check(&admin, "menu admin", &mut report);
    admin.click("#new");
    admin.type_into("#f-price_cents", "12,90");
    admin.type_into("#f-preparation_minutes", "5");
    admin.click("#product-form button[type=submit]");
    admin.wait("an error next to the name", Duration::from_secs(10), |b| {
        Some(b.text("#f-name-error")).filter(|t| !t.trim().is_empty())
    });
    assert_eq!(
        admin.script(
            "return document.querySelector('#f-name').getAttribute('aria-invalid')",
            json!([])
        ),
        json!("true")
    );
    shots.take(&admin, "admin-field-error");
    check(&admin, "menu admin form", &mut report);

    // The kiosk no longer offers it.
    kiosk.goto(&format!("{gateway}/?pos=TOTEM01"));
    kiosk.click("#begin");
    kiosk.find("#products li:nth-child(1) button");
    let offered = kiosk.text("#products");
    assert!(
        !offered.contains(&first),
        "{first} is still offered:\n{offered}"
    );
    assert!(offered.contains(&second), "{offered}");
    shots.take(&kiosk, "kiosk-without-the-product");

    std::fs::write(shots.dir.join("report.txt"), &report).unwrap();
    println!(
        "{report}\nscreenshots and report.txt in {}",
        shots.dir.display()
    );
    assert!(
        serious.is_empty(),
        "serious accessibility violations:\n{}",
        serious.join("\n")
    );
}
