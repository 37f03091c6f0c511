//! `[sso]` and its `[[sso.oidc_providers]]`: the ideas (and mostly the names) of Synapse's
//! `sso` and `oidc_providers` settings.

use serde::Deserialize;

use crate::services::retention::lifetime::Lifetime;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsoConfig {
    /// URL prefixes of clients that get the login token without a confirmation page
    /// (`redirectUrl` of `/login/sso/redirect`). Any other client gets a page that names it and
    /// asks the user to continue.
    pub client_whitelist: Vec<String>,
    /// How long the login token of a finished sign-in works (the client spends it at once).
    pub login_token_lifetime: Lifetime,
    /// How long a sign-in may take at the identity provider (the signed cookie's lifetime).
    pub flow_timeout: Lifetime,
    pub oidc_providers: Vec<OidcProviderConfig>,
}

impl Default for SsoConfig {
    fn default() -> Self {
        Self {
            client_whitelist: Vec::new(),
            login_token_lifetime: Lifetime(120_000),
            flow_timeout: Lifetime(600_000),
            oidc_providers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The provider's id in URLs and in `/login`'s `identity_providers` (`[A-Za-z0-9._~-]`).
    pub idp_id: String,
    /// The name users see ("Sign in with …").
    pub idp_name: String,
    /// An `mxc://` icon for clients' buttons.
    #[serde(default)]
    pub idp_icon: Option<String>,
    /// A brand clients may style (`google`, `github`, …).
    #[serde(default)]
    pub idp_brand: Option<String>,
    /// The issuer (`iss` of ID tokens; discovery reads `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// How the client authenticates at the token endpoint.
    #[serde(default)]
    pub client_auth_method: ClientAuthMethod,
    /// Scopes asked besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Read the endpoints from the provider's discovery document (else set them below; set ones
    /// override discovered ones).
    #[serde(default = "yes")]
    pub discover: bool,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// PKCE (S256): `auto` and `always` send it (a provider without PKCE ignores it), `never`.
    #[serde(default)]
    pub pkce_method: PkceMethod,
    /// Where claims come from: `auto` (the ID token) or `userinfo_endpoint` (the ID token, then
    /// the userinfo answer on top).
    #[serde(default)]
    pub user_profile_method: UserProfileMethod,
    /// A sign-in whose localpart names an existing account not yet linked to this provider logs
    /// into it (and links it). Off: such a sign-in is refused.
    #[serde(default)]
    pub allow_existing_users: bool,
    /// Claims the user must have: `{ attribute = "groups", value = "matrix" }` (equal, or one of
    /// a list). All must hold.
    #[serde(default)]
    pub attribute_requirements: Vec<AttributeRequirement>,
    /// Accept OpenID Connect back-channel logout tokens from this provider at
    /// `/_parvis/client/oidc/backchannel_logout` (the sessions it names end).
    #[serde(default)]
    pub backchannel_logout_enabled: bool,
    #[serde(default)]
    pub user_mapping_provider: UserMapping,
}

fn default_scopes() -> Vec<String> {
    vec!["profile".to_owned(), "email".to_owned()]
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PkceMethod {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserProfileMethod {
    #[default]
    Auto,
    UserinfoEndpoint,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeRequirement {
    pub attribute: String,
    pub value: String,
}

/// Which claims make the account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserMapping {
    /// The stable id of the user at the provider (what the account is linked by).
    pub subject_claim: String,
    /// The claim that proposes the localpart (lower-cased; other characters than Matrix allows
    /// are written `=xx`). Unset or absent: the user chooses one on the confirmation page.
    pub localpart_claim: Option<String>,
    /// Keep only what comes before an `@` in the localpart claim (`jane.doe@corp.example.com`
    /// → `jane.doe`): for providers whose username is an e-mail-like UPN (Entra ID).
    pub localpart_strip_domain: bool,
    pub display_name_claim: Option<String>,
    pub email_claim: Option<String>,
    /// Let the user change the proposed localpart on the confirmation page.
    pub confirm_localpart: bool,
}

impl Default for UserMapping {
    fn default() -> Self {
        Self {
            subject_claim: "sub".to_owned(),
            localpart_claim: Some("preferred_username".to_owned()),
            localpart_strip_domain: false,
            display_name_claim: Some("name".to_owned()),
            email_claim: Some("email".to_owned()),
            confirm_localpart: false,
        }
    }
}

impl SsoConfig {
    /// The configuration's mistakes, each naming its setting.
    pub fn check(&self, public_base_url: Option<&str>) -> Result<(), String> {
        if self.oidc_providers.is_empty() {
            return Ok(());
        }
        if public_base_url.is_none() {
            return Err(
                "sso.oidc_providers: set listen.public_base_url (the providers send the browser back to it)"
                    .to_owned(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.oidc_providers.iter().enumerate() {
            let at = format!("sso.oidc_providers[{i}]");
            let id_ok = !p.idp_id.is_empty()
                && p.idp_id.len() <= 255
                && p.idp_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c));
            if !id_ok {
                return Err(format!(
                    "{at}.idp_id: `{}` must be 1 to 255 of A-Z a-z 0-9 . _ ~ -",
                    p.idp_id
                ));
            }
            if !seen.insert(p.idp_id.as_str()) {
                return Err(format!("{at}.idp_id: `{}` is used twice", p.idp_id));
            }
            check_url(&format!("{at}.issuer"), &p.issuer)?;
            for (name, url) in [
                ("authorization_endpoint", &p.authorization_endpoint),
                ("token_endpoint", &p.token_endpoint),
                ("userinfo_endpoint", &p.userinfo_endpoint),
                ("jwks_uri", &p.jwks_uri),
            ] {
                if let Some(url) = url {
                    check_url(&format!("{at}.{name}"), url)?;
                }
            }
            if !p.discover {
                for (name, url) in [
                    ("authorization_endpoint", &p.authorization_endpoint),
                    ("token_endpoint", &p.token_endpoint),
                    ("jwks_uri", &p.jwks_uri),
                ] {
                    if url.is_none() {
                        return Err(format!("{at}.{name}: needed when discover = false"));
                    }
                }
            }
            if p.user_profile_method == UserProfileMethod::UserinfoEndpoint
                && !p.discover
                && p.userinfo_endpoint.is_none()
            {
                return Err(format!(
                    "{at}.userinfo_endpoint: needed by user_profile_method = \"userinfo_endpoint\""
                ));
            }
            if p.client_auth_method != ClientAuthMethod::None && p.client_secret.is_none() {
                return Err(format!(
                    "{at}.client_secret: needed by client_auth_method (or set it to \"none\")"
                ));
            }
            if p.user_mapping_provider.subject_claim.is_empty() {
                return Err(format!(
                    "{at}.user_mapping_provider.subject_claim: must name a claim"
                ));
            }
            if let Some(icon) = &p.idp_icon
                && !icon.starts_with("mxc://")
            {
                return Err(format!("{at}.idp_icon: `{icon}` is not an mxc:// URI"));
            }
        }
        Ok(())
    }
}

fn check_url(setting: &str, url: &str) -> Result<(), String> {
    match openidconnect::url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
        _ => Err(format!("{setting}: `{url}` is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OidcProviderConfig {
        toml::from_str(
            r#"
            idp_id = "company"
            idp_name = "Company"
            issuer = "https://id.example.com/"
            client_id = "parvis"
            client_secret = "s3cret"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn a_provider_needs_the_public_url_a_good_id_and_its_secret() {
        let mut config = SsoConfig {
            oidc_providers: vec![provider()],
            ..Default::default()
        };
        assert!(config.check(Some("https://m.example.com")).is_ok());
        assert!(config.check(None).unwrap_err().contains("public_base_url"));
        config.oidc_providers[0].idp_id = "bad id".into();
        assert!(
            config
                .check(Some("https://m"))
                .unwrap_err()
                .contains("idp_id")
        );
        config.oidc_providers[0].idp_id = "company".into();
        config.oidc_providers.push(provider());
        assert!(
            config
                .check(Some("https://m"))
                .unwrap_err()
                .contains("twice")
        );
        config.oidc_providers.pop();
        config.oidc_providers[0].client_secret = None;
        assert!(
            config
                .check(Some("https://m"))
                .unwrap_err()
                .contains("client_secret")
        );
        config.oidc_providers[0].client_auth_method = ClientAuthMethod::None;
        assert!(config.check(Some("https://m")).is_ok());
        config.oidc_providers[0].discover = false;
        assert!(
            config
                .check(Some("https://m"))
                .unwrap_err()
                .contains("authorization_endpoint")
        );
    }
}
