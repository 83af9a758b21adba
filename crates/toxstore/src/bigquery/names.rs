//! Checks on every name that reaches a URL or SQL text, run before anything
//! is built from it.

use reqwest::Url;

use crate::{Error, Result};

/// A Google Cloud project id: 6 to 30 lowercase ASCII letters, digits and
/// hyphens, starting with a letter and not ending with a hyphen, optionally
/// after a `domain.example:` prefix (the old domain-scoped projects).
pub(crate) fn project(name: &str) -> Result<()> {
    let invalid = || Error::InvalidInput {
        what: format!(
            "BigQuery project {name:?}: expected 6 to 30 lowercase letters, digits and hyphens, \
             starting with a letter (optionally after a domain and a colon)"
        ),
    };
    let id = match name.split_once(':') {
        Some((domain, id)) => {
            let domain_ok = !domain.is_empty()
                && domain
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'.' || byte == b'-');
            if !domain_ok {
                return Err(invalid());
            }
            id
        }
        None => name,
    };
    let bytes = id.as_bytes();
    let valid = (6..=30).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes.last() != Some(&b'-')
        && bytes.iter().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-');
    if valid { Ok(()) } else { Err(invalid()) }
}

/// A dataset id: 1 to 1024 ASCII letters, digits and underscores (the rule of
/// `toxdedup`, which substitutes it into the migrations).
pub(crate) fn dataset(name: &str) -> Result<()> {
    toxdedup::migrations::validate_dataset(name)
        .map_err(|error| Error::InvalidInput { what: format!("BigQuery dataset: {error}") })
}

/// A location such as `US`, `EU` or `europe-west1`.
pub(crate) fn location(name: &str) -> Result<()> {
    let valid =
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            what: format!(
                "BigQuery location {name:?}: expected letters, digits and hyphens, such as US or europe-west1"
            ),
        })
    }
}

/// The REST API's base URL, ending with `/bigquery/v2`. A bare origin such as
/// `http://127.0.0.1:9050` (how an emulator is usually given) gets the path
/// added; any other path must be `/bigquery/v2` already. User names and
/// passwords are refused: they would end up in error messages.
pub(crate) fn endpoint(url: &str) -> Result<String> {
    // A URL with an `@` may carry a password: never echo it.
    let shown = if url.contains('@') { "(not shown: it contains '@')".to_owned() } else { format!("{url:?}") };
    let invalid = |problem: &str| Error::InvalidInput { what: format!("BigQuery endpoint {shown}: {problem}") };
    let parsed = Url::parse(url).map_err(|error| invalid(&format!("not a URL ({error})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("expected an http:// or https:// URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("credentials do not belong in the URL"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("expected no query string or fragment"));
    }
    let path = parsed.path().trim_end_matches('/');
    let origin = parsed.origin().ascii_serialization();
    match path {
        "" => Ok(format!("{origin}/bigquery/v2")),
        _ if path.ends_with("/bigquery/v2") => Ok(format!("{origin}{path}")),
        _ => Err(invalid("the path must end with /bigquery/v2 (or be empty, for an emulator's root URL)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: std::fmt::Debug>(result: Result<T>, valid: bool, name: &str) {
        match (&result, valid) {
            (Ok(_), true) => {}
            (Err(Error::InvalidInput { what }), false) => {
                assert!(what.contains(&format!("{name:?}")), "the message does not name {name:?}: {what}")
            }
            _ => panic!("{name:?}: expected {}, got {result:?}", if valid { "Ok" } else { "InvalidInput" }),
        }
    }

    #[test]
    fn projects() {
        for name in ["test-project", "my-project-123456", "example.com:my-project"] {
            check(project(name), true, name);
        }
        for name in [
            "",
            "short",
            "Test-project",
            "test-project-",
            "1test-project",
            "test project",
            "test-project;",
            "test`project",
            "test'project",
            "a\"b-project",
            "tést-project",
            ":test-project",
        ] {
            check(project(name), false, name);
        }
    }

    #[test]
    fn datasets() {
        for name in ["toxscore", "Tox_Score_2", "_x"] {
            check(dataset(name), true, name);
        }
        for name in
            ["", "tox score", "tox;score", "tox`score", "tox'score", "tox\"score", "tox-score", "tox.score", "ünï"]
        {
            check(dataset(name), false, name);
        }
        let long = "a".repeat(1025);
        check(dataset(&long), false, &long);
    }

    #[test]
    fn locations() {
        check(location("EU"), true, "EU");
        check(location("europe-west1"), true, "europe-west1");
        check(location("eu;DROP"), false, "eu;DROP");
    }

    #[test]
    fn endpoints() {
        let cases = [
            ("http://127.0.0.1:9050", Some("http://127.0.0.1:9050/bigquery/v2")),
            ("http://127.0.0.1:9050/", Some("http://127.0.0.1:9050/bigquery/v2")),
            ("http://127.0.0.1:9050/bigquery/v2", Some("http://127.0.0.1:9050/bigquery/v2")),
            ("https://bigquery.googleapis.com/bigquery/v2/", Some("https://bigquery.googleapis.com/bigquery/v2")),
            ("http://127.0.0.1:9050/v2", None),
            ("ftp://127.0.0.1/bigquery/v2", None),
            ("http://user:secret@127.0.0.1:9050", None),
            ("http://127.0.0.1:9050/bigquery/v2?x=1", None),
            ("127.0.0.1:9050", None),
            ("", None),
        ];
        for (url, expected) in cases {
            match expected {
                Some(expected) => assert_eq!(endpoint(url).expect(url), expected),
                None => {
                    let error = endpoint(url).expect_err(url);
                    assert!(matches!(error, Error::InvalidInput { .. }), "{url}: {error:?}");
                    assert!(!error.to_string().contains("secret"), "{error}");
                }
            }
        }
    }
}
