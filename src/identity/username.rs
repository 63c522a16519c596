//! Usernames for accounts created from OpenID Connect logins.
//!
//! When idgate creates a user in The Things Stack, the user needs a username
//! that follows The Things Stack's rules: it matches
//! `^[a-z0-9](?:[-]?[a-z0-9]){1,}$` and has at most [`MAX_LEN`] characters.
//! This module derives those usernames from the ID token's name claims,
//! following The Things Stack's username rule set.
//!
//! Candidates, in order:
//! 1. `preferred_username` (for Entra this is usually an email address, so
//!    `j.doe@contoso.com` becomes `j-doe-contoso-com`);
//! 2. the email local part (`j.doe@example.com` → `j-doe`);
//! 3. given name + family name (`John Doe` → `john-doe`);
//! 4. email local part + provider ID (`j-doe-my-oidc-provider`);
//! 5. given + family name + provider ID (`john-doe-my-oidc-provider`).
//!
//! Invalid candidates are skipped and duplicates are dropped. A registry tries
//! the [`attempts`] in order and takes the first one that is free: each
//! candidate as it is, then (unless it is the preferred username)
//! [`SUFFIX_TRIES`] variants with a random suffix.

use std::collections::HashSet;

use rand::Rng;

/// The longest username The Things Stack accepts.
pub const MAX_LEN: usize = 36;

/// How many randomly suffixed variants of a suffixable candidate are tried
/// before moving on to the next candidate.
pub const SUFFIX_TRIES: usize = 3;

/// Number of random characters in a suffix.
const SUFFIX_LEN: usize = 5;

/// Characters a random suffix is drawn from.
const SUFFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Claims that usernames are derived from.
#[derive(Debug, Clone, Copy, Default)]
pub struct NameClaims<'a> {
    pub preferred_username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
}

/// A valid username to try, and whether a random suffix may be appended to
/// it when it is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub base: String,
    pub suffixable: bool,
}

/// Turns a raw claim value into username form.
///
/// Letters are folded to ASCII (`Zoë` → `zoe`, `Łukasz` → `lukasz`,
/// `北京` → `beijing`), lower-cased, every character outside `[a-z0-9]`
/// becomes `-`, runs of `-` collapse to one, leading and trailing `-` are
/// removed, and the result is cut to [`MAX_LEN`] characters (removing a
/// trailing `-` the cut leaves). The result may still be invalid, e.g. empty
/// or a single character; check it with [`is_valid`].
pub fn normalize(raw: &str) -> String {
    let folded = any_ascii::any_ascii(raw);
    let mut out = String::with_capacity(folded.len());
    for c in folded.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    // `out` is ASCII only, so cutting at a byte index is a character cut.
    out.truncate(MAX_LEN);
    let kept = out.trim_end_matches('-').len();
    out.truncate(kept);
    out
}

/// Whether `name` matches `^[a-z0-9](?:[-]?[a-z0-9]){1,}$` and has at most
/// [`MAX_LEN`] characters.
pub fn is_valid(name: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    (2..=MAX_LEN).contains(&bytes.len())
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
        && !name.contains("--")
}

/// The valid, deduplicated candidates derived from `claims`, in order.
///
/// `provider_id` is the identity provider's slug (e.g. `my-oidc-provider`).
/// The provider-suffixed candidates exist only when the email local part or
/// the name normalises to something non-empty; the provider ID alone is never
/// a candidate. A candidate equal to an earlier one is dropped, so it keeps
/// the earlier one's position and `suffixable` flag.
pub fn candidates(claims: &NameClaims<'_>, provider_id: &str) -> Vec<Candidate> {
    let local_part = claims
        .email
        .and_then(|email| email.rsplit_once('@'))
        .map(|(local, _)| normalize(local))
        .filter(|local| !local.is_empty());
    let name = full_name(claims)
        .map(|name| normalize(&name))
        .filter(|name| !name.is_empty());
    let with_provider = |base: &String| normalize(&format!("{base}-{provider_id}"));
    let local_with_provider = local_part.as_ref().map(with_provider);
    let name_with_provider = name.as_ref().map(with_provider);

    let raw = [
        (claims.preferred_username.map(normalize), false),
        (local_part, true),
        (name, true),
        (local_with_provider, true),
        (name_with_provider, true),
    ];
    let mut seen = HashSet::new();
    raw.into_iter()
        .filter_map(|(base, suffixable)| {
            let base = base.filter(|base| is_valid(base))?;
            seen.insert(base.clone())
                .then_some(Candidate { base, suffixable })
        })
        .collect()
}

/// Given and family name joined by a space. When only one of the two is
/// present it is used alone: this is the choice made here, so a user with
/// only a given name (or only a family name) still gets a name candidate.
fn full_name(claims: &NameClaims<'_>) -> Option<String> {
    match (claims.given_name, claims.family_name) {
        (Some(given), Some(family)) => Some(format!("{given} {family}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (None, None) => None,
    }
}

/// `base` with `-` and 5 random `[a-z0-9]` characters appended.
///
/// `base` is cut so that the whole stays within [`MAX_LEN`] characters, and a
/// trailing `-` left by the cut is removed. `base` is expected to be a valid
/// username, as [`candidates`] returns; the result is then valid too.
pub fn with_suffix<R: Rng + ?Sized>(base: &str, rng: &mut R) -> String {
    let room = MAX_LEN - SUFFIX_LEN - 1;
    let cut = base
        .char_indices()
        .nth(room)
        .map_or(base, |(end, _)| &base[..end])
        .trim_end_matches('-');
    let mut out = String::with_capacity(cut.len() + 1 + SUFFIX_LEN);
    out.push_str(cut);
    out.push('-');
    for _ in 0..SUFFIX_LEN {
        let index = rng.gen_range(0..SUFFIX_ALPHABET.len());
        out.push(char::from(SUFFIX_ALPHABET[index]));
    }
    out
}

/// The ordered attempts a registry makes: each candidate as is, then (when
/// suffixable) [`SUFFIX_TRIES`] suffixed variants, before the next candidate.
pub fn attempts<R: Rng + ?Sized>(
    claims: &NameClaims<'_>,
    provider_id: &str,
    rng: &mut R,
) -> Vec<String> {
    let mut out = Vec::new();
    for candidate in candidates(claims, provider_id) {
        let suffixed: Vec<String> = if candidate.suffixable {
            (0..SUFFIX_TRIES)
                .map(|_| with_suffix(&candidate.base, rng))
                .collect()
        } else {
            Vec::new()
        };
        out.push(candidate.base);
        out.extend(suffixed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use regex::Regex;

    const PROVIDER: &str = "my-oidc-provider";
    const PATTERN: &str = "^[a-z0-9](?:[-]?[a-z0-9]){1,}$";

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn bases(claims: &NameClaims<'_>) -> Vec<String> {
        candidates(claims, PROVIDER)
            .into_iter()
            .map(|c| c.base)
            .collect()
    }

    fn full_claims() -> NameClaims<'static> {
        NameClaims {
            preferred_username: Some("John.Doe"),
            email: Some("j.doe@example.com"),
            given_name: Some("John"),
            family_name: Some("Doe"),
        }
    }

    fn assert_suffixed(value: &str, base: &str) {
        let (head, suffix) = value.rsplit_once('-').expect("suffix separator");
        assert_eq!(head, base, "{value}");
        assert_eq!(suffix.len(), 5, "{value}");
        assert!(suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert!(is_valid(value), "{value}");
    }

    #[test]
    fn normalizes_examples() {
        assert_eq!(normalize("John.Doe"), "john-doe");
        assert_eq!(normalize("j.doe"), "j-doe");
        assert_eq!(normalize("John Doe"), "john-doe");
        assert_eq!(normalize("j.doe@contoso.com"), "j-doe-contoso-com");
        assert_eq!(normalize("Zoë"), "zoe");
        assert_eq!(normalize("Łukasz"), "lukasz");
        assert_eq!(normalize("Jürgen Groß"), "jurgen-gross");
        assert_eq!(normalize("  --Foo__Bar!!  "), "foo-bar");
    }

    #[test]
    fn normalizes_cjk() {
        assert_eq!(normalize("北京"), "beijing");
        assert_eq!(normalize("山田 太郎"), "shantian-tailang");
        assert_eq!(normalize("김철수"), "gimcheolsu");
        let claims = NameClaims {
            given_name: Some("太郎"),
            family_name: Some("山田"),
            ..NameClaims::default()
        };
        assert_eq!(
            bases(&claims),
            ["tailang-shantian", "tailang-shantian-my-oidc-provider"]
        );
    }

    #[test]
    fn cuts_to_max_len_and_drops_trailing_dash() {
        let long = "a".repeat(40);
        assert_eq!(normalize(&long), "a".repeat(36));
        // The 36th character is a `-`, which the cut leaves at the end.
        let dashed = format!("{}.{}", "a".repeat(35), "b".repeat(10));
        assert_eq!(normalize(&dashed), "a".repeat(35));
        assert!(is_valid(&normalize(&dashed)));
    }

    #[test]
    fn checks_validity() {
        for valid in ["ab", "a1", "john-doe", "a-b-c", &"a".repeat(36)] {
            assert!(is_valid(valid), "{valid}");
        }
        for invalid in [
            "",
            "a",
            "-ab",
            "ab-",
            "a--b",
            "John",
            "a_b",
            "zoë",
            &"a".repeat(37),
        ] {
            assert!(!is_valid(invalid), "{invalid}");
        }
    }

    #[test]
    fn candidates_in_order() {
        let claims = NameClaims {
            preferred_username: Some("JD"),
            ..full_claims()
        };
        let candidates = candidates(&claims, PROVIDER);
        let expected = [
            ("jd", false),
            ("j-doe", true),
            ("john-doe", true),
            ("j-doe-my-oidc-provider", true),
            ("john-doe-my-oidc-provider", true),
        ];
        assert_eq!(candidates.len(), expected.len());
        for (candidate, (base, suffixable)) in candidates.iter().zip(expected) {
            assert_eq!(candidate.base, base);
            assert_eq!(candidate.suffixable, suffixable);
        }
    }

    #[test]
    fn entra_preferred_username_is_an_email() {
        let claims = NameClaims {
            preferred_username: Some("j.doe@contoso.com"),
            ..NameClaims::default()
        };
        assert_eq!(bases(&claims), ["j-doe-contoso-com"]);
    }

    #[test]
    fn drops_duplicates() {
        // `John.Doe` and `John Doe` both give `john-doe`; the name candidate
        // is dropped, and the preferred one (never suffixed) stays first.
        let candidates = candidates(&full_claims(), PROVIDER);
        assert_eq!(
            candidates,
            [
                Candidate {
                    base: "john-doe".into(),
                    suffixable: false
                },
                Candidate {
                    base: "j-doe".into(),
                    suffixable: true
                },
                Candidate {
                    base: "j-doe-my-oidc-provider".into(),
                    suffixable: true
                },
                Candidate {
                    base: "john-doe-my-oidc-provider".into(),
                    suffixable: true
                },
            ]
        );
    }

    #[test]
    fn skips_values_that_normalize_to_nothing_or_one_character() {
        let claims = NameClaims {
            preferred_username: Some("!!!"),
            email: Some("j@example.com"),
            given_name: Some("ü"),
            family_name: None,
        };
        // `j` and `u` alone are too short, but with the provider ID they are fine.
        assert_eq!(bases(&claims), ["j-my-oidc-provider", "u-my-oidc-provider"]);

        let claims = NameClaims {
            preferred_username: Some(""),
            email: Some("@example.com"),
            given_name: Some("\u{301}"),
            family_name: Some("  "),
        };
        assert!(candidates(&claims, PROVIDER).is_empty());
    }

    #[test]
    fn email_local_part_is_before_the_last_at() {
        let claims = NameClaims {
            email: Some("\"a@b\"@example.com"),
            ..NameClaims::default()
        };
        assert_eq!(bases(&claims), ["a-b", "a-b-my-oidc-provider"]);

        let claims = NameClaims {
            email: Some("no-at-sign"),
            ..NameClaims::default()
        };
        assert!(candidates(&claims, PROVIDER).is_empty());
    }

    #[test]
    fn single_name_part_is_used_alone() {
        let given = NameClaims {
            given_name: Some("Madonna"),
            ..NameClaims::default()
        };
        assert_eq!(bases(&given), ["madonna", "madonna-my-oidc-provider"]);
        let family = NameClaims {
            family_name: Some("Doe"),
            ..NameClaims::default()
        };
        assert_eq!(bases(&family), ["doe", "doe-my-oidc-provider"]);
    }

    #[test]
    fn suffix_shape() {
        let mut rng = rng();
        assert_suffixed(&with_suffix("john-doe", &mut rng), "john-doe");

        let base = "a".repeat(36);
        let value = with_suffix(&base, &mut rng);
        assert_eq!(value.len(), 36);
        assert_suffixed(&value, &"a".repeat(30));

        // The cut ends on a `-`, which is removed before the suffix.
        let base = format!("{}-{}", "a".repeat(29), "b".repeat(6));
        let value = with_suffix(&base, &mut rng);
        assert_eq!(value.len(), 35);
        assert_suffixed(&value, &"a".repeat(29));
    }

    #[test]
    fn attempts_in_order_and_preferred_never_suffixed() {
        let attempts = attempts(&full_claims(), PROVIDER, &mut rng());
        assert_eq!(attempts.len(), 1 + 3 * (1 + SUFFIX_TRIES));
        assert_eq!(attempts[0], "john-doe");
        let groups = [
            (1, "j-doe"),
            (5, "j-doe-my-oidc-provider"),
            (9, "john-doe-my-oidc-provider"),
        ];
        for (start, base) in groups {
            assert_eq!(attempts[start], base);
            for suffixed in &attempts[start + 1..start + 1 + SUFFIX_TRIES] {
                assert_suffixed(suffixed, base);
            }
        }
        assert!(!attempts
            .iter()
            .any(|a| a.starts_with("john-doe-") && !a.starts_with("john-doe-my-oidc-provider")));
    }

    #[test]
    fn only_preferred_gives_one_attempt() {
        let claims = NameClaims {
            preferred_username: Some("j.doe@contoso.com"),
            ..NameClaims::default()
        };
        assert_eq!(
            attempts(&claims, PROVIDER, &mut rng()),
            ["j-doe-contoso-com"]
        );
    }

    fn claim() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            any::<String>().prop_map(Some),
            "[A-Za-z0-9 ._@-]{0,50}".prop_map(Some),
        ]
    }

    /// Arbitrary unicode, and ASCII-heavy input that often reaches the cut.
    fn raw_value() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[A-Za-z0-9 ._@ëŁß北京-]{0,60}"]
    }

    proptest! {
        #[test]
        fn normalize_output_is_well_formed(raw in raw_value()) {
            let name = normalize(&raw);
            prop_assert!(name.len() <= MAX_LEN);
            prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            prop_assert!(!name.starts_with('-') && !name.ends_with('-') && !name.contains("--"));
            if is_valid(&name) {
                prop_assert!(Regex::new(PATTERN).unwrap().is_match(&name));
            }
        }

        #[test]
        fn normalize_is_idempotent(raw in raw_value()) {
            let once = normalize(&raw);
            prop_assert_eq!(normalize(&once), once);
        }

        #[test]
        fn is_valid_agrees_with_pattern(name in prop_oneof![any::<String>(), "[a-z0-9-]{0,40}"]) {
            let expected = Regex::new(PATTERN).unwrap().is_match(&name) && name.chars().count() <= MAX_LEN;
            prop_assert_eq!(is_valid(&name), expected);
        }

        #[test]
        fn every_attempt_is_valid(
            preferred_username in claim(),
            email in claim(),
            given_name in claim(),
            family_name in claim(),
            provider_id in "[a-z0-9]{1,12}(-[a-z0-9]{1,12}){0,3}",
            seed in any::<u64>(),
        ) {
            let claims = NameClaims {
                preferred_username: preferred_username.as_deref(),
                email: email.as_deref(),
                given_name: given_name.as_deref(),
                family_name: family_name.as_deref(),
            };
            let mut rng = StdRng::seed_from_u64(seed);
            for attempt in attempts(&claims, &provider_id, &mut rng) {
                prop_assert!(is_valid(&attempt), "{}", attempt);
            }
        }
    }
}
