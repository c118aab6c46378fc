//! Argon2 password hashes computed in memory each hashing thread keeps.
//!
//! A hash of the default parameters needs 19 MiB. Allocated anew for every
//! login, those blocks are not given back to the system between logins (the
//! allocator keeps them, fragmented among small allocations): a few dozen
//! logins left the service at hundreds of MiB. Each thread of the hashing
//! pool keeps one buffer instead, so the service holds at most one per
//! thread however many logins arrive.

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The most memory a stored hash may ask for (in 1 KiB blocks): the
/// default's 19 MiB. A hash asking for more is not computed.
const MAX_BLOCKS: usize = 19 * 1024;

thread_local! {
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `argon2` into `out` with this thread's buffer.
fn compute(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> anyhow::Result<()> {
    let needed = params.block_count();
    anyhow::ensure!(
        needed <= MAX_BLOCKS,
        "the hash asks for {needed} KiB of memory, more than the {MAX_BLOCKS} KiB allowed"
    );
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < needed {
            memory.resize(needed, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..needed])
            .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
    })
}

/// A new Argon2id hash of `password`, as a PHC string.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut raw = [0u8; 32];
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow::anyhow!("cannot read the salt: {e}"))?;
    compute(&argon2, &params, password.as_bytes(), salt_raw, &mut raw)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params)
            .try_into()
            .map_err(|e| anyhow::anyhow!("cannot encode the parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&raw).map_err(|e| anyhow::anyhow!("{e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored` (false for anything
/// unreadable); compared in constant time.
pub fn verify(stored: &str, password: &str) -> bool {
    let check = || -> anyhow::Result<bool> {
        let parsed = PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("{e}"))?;
        let algorithm =
            Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("{e}"))?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| anyhow::anyhow!("{e}"))?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
        let expected = parsed.hash.ok_or_else(|| anyhow::anyhow!("no hash"))?;
        let salt = parsed.salt.ok_or_else(|| anyhow::anyhow!("no salt"))?;
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        compute(&argon2, &params, password.as_bytes(), salt_raw, &mut out)?;
        // Output's equality is constant-time.
        Ok(Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))? == expected)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_reads_the_standard_format() {
        let stored = hash("correct horse battery staple").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify(&stored, "correct horse battery staple"));
        assert!(!verify(&stored, "correct horse battery stable"));
        assert!(!verify("not a hash", "x"));
        // A hash made by the argon2 crate's own API verifies here too.
        use argon2::password_hash::PasswordHasher;
        let theirs = Argon2::default()
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify(&theirs, "pw"));
        // One buffer per thread, whatever the number of hashes.
        MEMORY.with(|m| assert_eq!(m.borrow().len(), 19456));
    }
}
