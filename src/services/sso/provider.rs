//! One OpenID provider: its metadata and keys (discovered, cached, fetched again when a token is
//! signed by a key we do not know), the authorization URL of a sign-in, and the code exchange
//! whose ID token the `openidconnect` crate checks (signature by the provider's keys, issuer,
//! audience, expiry, nonce). Every request goes through `services::outgoing`, so the network
//! deny list and the answer size bound hold for providers too.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use openidconnect::{
    AdditionalClaims, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IdTokenFields, IssuerUrl, JsonWebKeySet, JsonWebKeySetUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse, UserInfoUrl,
    core::{
        CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
        CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken,
        CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{ClientAuthMethod, OidcProviderConfig, PkceMethod, UserProfileMethod};
use crate::services::Services;

/// Claims beyond the standard ones (a `groups` claim, say), kept as they came.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    pub claims: Map<String, Value>,
}
impl AdditionalClaims for OtherClaims {}

type IdFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<IdFields, CoreTokenType>;
type OidcClient = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Metadata is read again after this long (providers rotate keys).
const METADATA_LIFETIME: Duration = Duration::from_secs(3600);
/// An unknown signing key makes us fetch the keys again, at most this often (a stream of forged
/// tokens cannot make us hammer the provider).
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);
/// Each request to the provider.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpFailure(String);

/// What the browser carries to the callback (signed): the CSRF state, nonce and PKCE verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub state: String,
    pub nonce: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
}

/// Sign-ins finishing at once per provider (each makes one or two requests to it); more wait at
/// most [`TIMEOUT`], then fail with [`BUSY`]: a flood of callbacks cannot open unbounded
/// connections to the provider.
pub const MAX_CONCURRENT: usize = 16;
/// The error of a sign-in that found no room (the callback answers 503).
pub const BUSY: &str = "too many sign-ins at once";

pub struct Provider {
    pub config: OidcProviderConfig,
    cached: tokio::sync::Mutex<Option<(Arc<CoreProviderMetadata>, Instant)>>,
    in_flight: tokio::sync::Semaphore,
}

/// The HTTP client of `openidconnect`: the outgoing client (deny list, bounded answer).
#[derive(Clone)]
struct Http(Arc<Services>);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpFailure;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(exchange(&self.0, request))
    }
}

/// One HTTP exchange with the provider.
async fn exchange(s: &Services, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
    let uri = request.uri().clone();
    let (mut parts, body) = request.into_parts();
    parts.uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|e: http::uri::InvalidUri| HttpFailure(e.to_string()))?;
    let request = http::Request::from_parts(parts, body);
    let answer = crate::services::outgoing::send(s, &uri, request, TIMEOUT)
        .await
        .map_err(|e| HttpFailure(format!("{uri}: {e}")))?;
    let (parts, body) = answer.into_parts();
    Ok(http::Response::from_parts(parts, body.to_vec()))
}

impl Provider {
    pub fn new(config: OidcProviderConfig) -> Self {
        Self {
            config,
            cached: tokio::sync::Mutex::new(None),
            in_flight: tokio::sync::Semaphore::new(MAX_CONCURRENT),
        }
    }

    /// The provider's metadata and keys: cached; read again when older than an hour or, with
    /// `refresh`, when the cached copy is older than [`REFETCH_AT_MOST_EVERY`].
    pub(super) async fn metadata(
        &self,
        s: &Arc<Services>,
        refresh: bool,
    ) -> Result<Arc<CoreProviderMetadata>, String> {
        let mut cached = self.cached.lock().await;
        if let Some((metadata, at)) = cached.as_ref() {
            let age = at.elapsed();
            if age < METADATA_LIFETIME && !(refresh && age >= REFETCH_AT_MOST_EVERY) {
                return Ok(metadata.clone());
            }
        }
        let metadata = Arc::new(self.fetch_metadata(s).await?);
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    async fn fetch_metadata(&self, s: &Arc<Services>) -> Result<CoreProviderMetadata, String> {
        let c = &self.config;
        let http = Http(s.clone());
        let issuer = IssuerUrl::new(c.issuer.clone()).map_err(|e| e.to_string())?;
        let url = |u: &Option<String>| u.clone().ok_or("missing endpoint".to_owned());
        let mut metadata = if c.discover {
            CoreProviderMetadata::discover_async(issuer, &http)
                .await
                .map_err(|e| format!("discovery at {}: {}", c.issuer, error_chain(&e)))?
        } else {
            CoreProviderMetadata::new(
                issuer,
                openidconnect::AuthUrl::new(url(&c.authorization_endpoint)?)
                    .map_err(|e| e.to_string())?,
                JsonWebKeySetUrl::new(url(&c.jwks_uri)?).map_err(|e| e.to_string())?,
                vec![openidconnect::ResponseTypes::new(vec![
                    openidconnect::core::CoreResponseType::Code,
                ])],
                vec![],
                vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
                Default::default(),
            )
        };
        if let Some(u) = &c.authorization_endpoint {
            metadata = metadata.set_authorization_endpoint(
                openidconnect::AuthUrl::new(u.clone()).map_err(|e| e.to_string())?,
            );
        }
        if let Some(u) = &c.token_endpoint {
            metadata = metadata.set_token_endpoint(Some(
                openidconnect::TokenUrl::new(u.clone()).map_err(|e| e.to_string())?,
            ));
        }
        if let Some(u) = &c.userinfo_endpoint {
            metadata = metadata.set_userinfo_endpoint(Some(
                UserInfoUrl::new(u.clone()).map_err(|e| e.to_string())?,
            ));
        }
        let explicit_jwks = c.jwks_uri.is_some() && c.discover;
        if let Some(u) = &c.jwks_uri {
            metadata =
                metadata.set_jwks_uri(JsonWebKeySetUrl::new(u.clone()).map_err(|e| e.to_string())?);
        }
        if !c.discover || explicit_jwks {
            let jwks = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &http)
                .await
                .map_err(|e| {
                    format!(
                        "keys at {}: {}",
                        metadata.jwks_uri().as_str(),
                        error_chain(&e)
                    )
                })?;
            metadata = metadata.set_jwks(jwks);
        }
        Ok(metadata)
    }

    /// A client of this provider; `callback` is the redirect URI of a sign-in (None: only tokens
    /// are checked).
    pub(super) fn client(
        &self,
        metadata: &CoreProviderMetadata,
        callback: Option<&str>,
    ) -> Result<OidcClient, String> {
        let c = &self.config;
        let secret = match c.client_auth_method {
            ClientAuthMethod::None => None,
            _ => c.client_secret.clone().map(ClientSecret::new),
        };
        let auth_type = match c.client_auth_method {
            ClientAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            _ => AuthType::RequestBody,
        };
        let client = OidcClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(c.client_id.clone()),
            secret,
        )
        .set_auth_type(auth_type);
        Ok(match callback {
            Some(callback) => client.set_redirect_uri(
                RedirectUrl::new(callback.to_owned()).map_err(|e| e.to_string())?,
            ),
            None => client,
        })
    }

    /// Where to send the browser to sign in, and what the callback needs to check the answer.
    pub async fn authorize(
        &self,
        s: &Arc<Services>,
        callback: &str,
    ) -> Result<(String, AuthRequest), String> {
        let metadata = self.metadata(s, false).await?;
        let client = self.client(&metadata, Some(callback))?;
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let mut pkce_verifier = None;
        if self.config.pkce_method != PkceMethod::Never {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            pkce_verifier = Some(verifier.secret().clone());
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            AuthRequest {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier,
            },
        ))
    }

    /// Exchanges the callback's `code` and answers the verified claims of the ID token (with the
    /// userinfo answer on top when `user_profile_method = "userinfo_endpoint"`).
    pub async fn finish(
        &self,
        s: &Arc<Services>,
        callback: &str,
        code: &str,
        auth: &AuthRequest,
    ) -> Result<Map<String, Value>, String> {
        let _permit = tokio::time::timeout(TIMEOUT, self.in_flight.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(BUSY)?;
        let metadata = self.metadata(s, false).await?;
        let client = self.client(&metadata, Some(callback))?;
        let http = Http(s.clone());
        let mut exchange = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| e.to_string())?;
        if let Some(verifier) = &auth.pkce_verifier {
            exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(verifier.clone()));
        }
        let tokens = exchange
            .request_async(&http)
            .await
            .map_err(|e| format!("the token endpoint: {}", error_chain(&e)))?;
        let id_token = tokens
            .id_token()
            .ok_or("the provider sent no ID token")?
            .clone();
        let nonce = Nonce::new(auth.nonce.clone());
        let verified = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(claims) => claims.clone(),
            // Signed by a key we have not seen: the provider may have rotated its keys.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                let metadata = self.metadata(s, true).await?;
                let client = self.client(&metadata, Some(callback))?;
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map_err(|e| format!("ID token: {e}"))?
                    .clone()
            }
            Err(e) => return Err(format!("ID token: {e}")),
        };
        let mut claims = match serde_json::to_value(&verified) {
            Ok(Value::Object(map)) => map,
            _ => return Err("ID token claims are not an object".to_owned()),
        };
        if self.config.user_profile_method == UserProfileMethod::UserinfoEndpoint {
            let info: openidconnect::UserInfoClaims<OtherClaims, CoreGenderClaim> = client
                .user_info(
                    tokens.access_token().clone(),
                    Some(verified.subject().clone()),
                )
                .map_err(|e| e.to_string())?
                .request_async(&http)
                .await
                .map_err(|e| format!("userinfo: {}", error_chain(&e)))?;
            if let Ok(Value::Object(more)) = serde_json::to_value(&info) {
                claims.extend(more);
            }
        }
        Ok(claims)
    }
}

/// An error and its causes, one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
