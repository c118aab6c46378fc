//! The wildcards of policies: `*` (any run) and `?` (one character) in
//! actions, resources and string conditions.

/// Glob matching with `*` and `?`. `star_spans` says whether the `*` at a
/// pattern index may match a `:`.
pub fn glob(pattern: &[char], text: &[char], star_spans: &dyn Fn(usize) -> bool) -> bool {
    // reachable[j]: the pattern so far can consume exactly text[..j].
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for (i, &p) in pattern.iter().enumerate() {
        let mut next = vec![false; text.len() + 1];
        match p {
            '*' => {
                let spans = star_spans(i);
                for j in 0..=text.len() {
                    if reachable[j] || (j > 0 && next[j - 1] && (spans || text[j - 1] != ':')) {
                        next[j] = true;
                    }
                }
            }
            '?' => next[1..].copy_from_slice(&reachable[..text.len()]),
            c => {
                for j in 1..=text.len() {
                    next[j] = reachable[j - 1] && text[j - 1] == c;
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

/// Whether a string matches a `StringLike` pattern, case-sensitively.
pub(crate) fn like(pattern: &str, text: &str) -> bool {
    glob(&chars(pattern), &chars(text), &|_| true)
}

/// Whether an action pattern (`sqs:*`, `*`, `ecr:Get*`) covers an action;
/// actions are case-insensitive.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    like(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// Whether a `Resource` pattern covers an ARN. A wildcard stays within its
/// colon-separated segment, except one that ends a segment (or the
/// pattern), which IAM lets run on across colons.
pub fn resource_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p = chars(pattern);
    glob(&p, &chars(resource), &|i| {
        p.get(i + 1).is_none_or(|c| *c == ':')
    })
}

/// `ArnLike`: each of an ARN's six colon-separated parts is matched on its
/// own; the last (the resource) may hold colons of its own.
pub(crate) fn arn_like(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| like(p, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_match_case_insensitively_with_wildcards() {
        assert!(action_matches("sqs:*", "sqs:SendMessage"));
        assert!(action_matches("*", "sns:Publish"));
        assert!(action_matches("SQS:sendmessage", "sqs:SendMessage"));
        assert!(action_matches("s?s:Publish", "sns:Publish"));
        assert!(!action_matches("sqs:Get*", "sqs:SendMessage"));
        assert!(!action_matches("sqs:*", "sns:Publish"));
    }

    #[test]
    fn a_resource_wildcard_crosses_colons_only_at_a_segment_end() {
        let queue = "arn:aws:sqs:us-east-1:123456789012:shop-order";
        assert!(resource_matches("*", queue));
        assert!(resource_matches("arn:aws:sqs:*:*:shop-*", queue));
        assert!(!resource_matches("arn:aws:sqs:*:*:shop-payment", queue));
        // `arn:aws:sqs:us-*` ends no segment with its star: it may not eat
        // the account and the name.
        assert!(!resource_matches("arn:aws:sqs:us-*order", queue));
        assert!(resource_matches("arn:aws:sqs:*", queue));
    }

    #[test]
    fn arn_like_matches_part_by_part() {
        let role = "arn:aws:iam::123456789012:role/techctl/shop/order";
        assert!(arn_like("arn:aws:iam::*:role/techctl/shop/*", role));
        assert!(!arn_like("arn:aws:iam::*:role/techctl/other/*", role));
        assert!(arn_like("arn:*:iam::123456789012:*", role));
        assert!(!arn_like("arn:aws:iam:*", role));
        let rule = "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/a/b/c";
        assert!(arn_like(
            "arn:aws:elasticloadbalancing:*:*:listener-rule/*",
            rule
        ));
    }
}
