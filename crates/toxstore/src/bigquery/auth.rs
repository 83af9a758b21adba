//! Where access tokens come from: gcp-bigquery-client's `Authenticator`
//! trait, implemented over yup-oauth2 (which the crate re-exports) for a
//! service-account key file or the application default credentials, and by a
//! constant token for an emulator.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::yup_oauth2;

use crate::{Error, Result};

/// The OAuth scope of the BigQuery API.
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// How long getting a token may take (a key-file token is fetched over the
/// network; application default credentials may ask a metadata server).
pub(crate) const TOKEN_TIMEOUT: Duration = Duration::from_secs(60);

/// How the backend authenticates.
///
/// Libraries read no environment variables: the caller passes the path that
/// `GOOGLE_APPLICATION_CREDENTIALS` names. (`ApplicationDefault` follows
/// Google's application-default lookup, which does consult that variable and
/// the gcloud configuration.)
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// A service-account key file (JSON), usually the path in
    /// `GOOGLE_APPLICATION_CREDENTIALS`.
    ServiceAccountKeyFile(PathBuf),
    /// Google's application default credentials.
    ApplicationDefault,
    /// A fixed bearer token, for an emulator (which ignores it).
    StaticToken(String),
    /// Any gcp-bigquery-client authenticator (workload identity, ...).
    Authenticator(Arc<dyn Authenticator>),
}

impl std::fmt::Debug for Credentials {
    /// Never shows a token.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ServiceAccountKeyFile(path) => {
                formatter.debug_tuple("ServiceAccountKeyFile").field(path).finish()
            }
            Credentials::ApplicationDefault => formatter.write_str("ApplicationDefault"),
            Credentials::StaticToken(_) => formatter.write_str("StaticToken(<redacted>)"),
            Credentials::Authenticator(_) => formatter.write_str("Authenticator(..)"),
        }
    }
}

impl Credentials {
    /// What a user should check when these credentials are refused; never
    /// the token itself.
    pub(crate) fn hint(&self) -> String {
        match self {
            Credentials::ServiceAccountKeyFile(path) => format!(
                "check the service-account key file {} (the GOOGLE_APPLICATION_CREDENTIALS setting) \
                 and that its account may use BigQuery in this project",
                path.display()
            ),
            Credentials::ApplicationDefault => "check the application default credentials: set \
                 GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run \
                 `gcloud auth application-default login`"
                .to_owned(),
            Credentials::StaticToken(_) => "check the static access token given for the emulator endpoint".to_owned(),
            Credentials::Authenticator(_) => "check the credentials of the authenticator given".to_owned(),
        }
    }
}

/// A token source ready to use, and the project its key file names, if any.
pub(crate) struct TokenSource {
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) key_project: Option<String>,
}

/// Builds the token source. Reads the key file; fetches no token yet.
pub(crate) async fn token_source(credentials: &Credentials) -> Result<TokenSource> {
    let hint = credentials.hint();
    let refused =
        |problem: String| Error::Unauthenticated { backend: super::BACKEND, what: format!("{problem}; {hint}") };
    match credentials {
        Credentials::StaticToken(token) => {
            Ok(TokenSource { authenticator: Arc::new(StaticToken(token.clone())), key_project: None })
        }
        Credentials::Authenticator(authenticator) => {
            Ok(TokenSource { authenticator: Arc::clone(authenticator), key_project: None })
        }
        Credentials::ServiceAccountKeyFile(path) => {
            let key = read_key(path).await.map_err(&refused)?;
            let key_project = key.project_id.clone();
            let auth = yup_oauth2::ServiceAccountAuthenticator::builder(key).build().await.map_err(|error| {
                refused(format!("the service-account key in {} is unusable: {error}", path.display()))
            })?;
            Ok(TokenSource { authenticator: Arc::new(YupToken { auth }), key_project })
        }
        Credentials::ApplicationDefault => {
            use yup_oauth2::authenticator::ApplicationDefaultCredentialsTypes;
            let options = yup_oauth2::ApplicationDefaultCredentialsFlowOpts::default();
            let built = match yup_oauth2::ApplicationDefaultCredentialsAuthenticator::builder(options).await {
                ApplicationDefaultCredentialsTypes::InstanceMetadata(builder) => builder.build().await,
                ApplicationDefaultCredentialsTypes::ServiceAccount(builder) => builder.build().await,
            };
            let auth =
                built.map_err(|error| refused(format!("the application default credentials are unusable: {error}")))?;
            Ok(TokenSource { authenticator: Arc::new(YupToken { auth }), key_project: None })
        }
    }
}

async fn read_key(path: &Path) -> std::result::Result<yup_oauth2::ServiceAccountKey, String> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|error| format!("cannot read the service-account key file {}: {error}", path.display()))?;
    // The file's content is secret: the message names the file and the JSON
    // problem's position only.
    yup_oauth2::parse_service_account_key(&bytes).map_err(|error| {
        let position = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<serde_json::Error>())
            .map(|json| format!(" (line {}, column {})", json.line(), json.column()))
            .unwrap_or_default();
        format!("{} is not a service-account key file{position}", path.display())
    })
}

/// A constant token, for an emulator.
#[derive(Clone)]
struct StaticToken(String);

#[async_trait]
impl Authenticator for StaticToken {
    async fn access_token(&self) -> std::result::Result<String, BQError> {
        Ok(self.0.clone())
    }
}

/// A yup-oauth2 authenticator (key file or application default credentials);
/// it caches and refreshes its token.
#[derive(Clone)]
struct YupToken {
    auth: yup_oauth2::authenticator::DefaultAuthenticator,
}

#[async_trait]
impl Authenticator for YupToken {
    async fn access_token(&self) -> std::result::Result<String, BQError> {
        let token = self.auth.token(&[SCOPE]).await?;
        token.token().map(str::to_owned).ok_or(BQError::NoToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_static_token() {
        let shown = format!("{:?}", Credentials::StaticToken("ya29.secret-token".into()));
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[tokio::test]
    async fn a_missing_or_bad_key_file_is_unauthenticated_naming_the_file_and_setting() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let missing = folder.path().join("missing.json");
        let bad = folder.path().join("bad.json");
        std::fs::write(&bad, "{\"private_key\": \"-----BEGIN secret material").expect("write");
        for path in [missing, bad] {
            let error = token_source(&Credentials::ServiceAccountKeyFile(path.clone()))
                .await
                .err()
                .expect("a bad key file is an error");
            let message = error.to_string();
            assert!(matches!(error, Error::Unauthenticated { .. }), "{error:?}");
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{message}");
            assert!(!message.contains("secret material"), "{message}");
        }
    }
}
