// The OpenID provider of tests/oidc.rs: node-oidc-provider (a certified OpenID Connect
// implementation) on loopback, with its development login form (any password), one client
// (Parvis) and a fixed table of accounts. Prints "ready" once it listens.
//   node provider.mjs <port> <client json>
// The client JSON: { client_id, client_secret, redirect_uris, backchannel_logout_uri }.
import Provider from 'oidc-provider';

const [port, clientJson] = process.argv.slice(2);
const client = JSON.parse(clientJson);

// accountId → claims. bob is outside the "matrix" group; carol's provider has no username for her.
const accounts = {
  alice: { preferred_username: 'alice', name: 'Alice Liddell', email: 'alice@example.org', groups: ['staff', 'matrix'] },
  bob: { preferred_username: 'bob', name: 'Bob', email: 'bob@example.org', groups: ['staff'] },
  carol: { name: 'Carol', email: 'carol@example.org', groups: ['matrix'] },
  dave: { preferred_username: 'dave', name: 'Dave (from the provider)', groups: ['matrix'] },
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    backchannel_logout_uri: client.backchannel_logout_uri,
    backchannel_logout_session_required: true,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  // Claims in the ID token itself (Parvis reads the ID token unless told to use userinfo).
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  cookies: { keys: ['parvis-test-provider-cookie-key'] },
  // The provider refuses to call loopback addresses (SSRF protection); Parvis listens on one.
  fetch(url, options) {
    delete options.dispatcher;
    return fetch(url, options);
  },
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...accounts[id] }; } };
  },
});

// Failed back-channel logouts would otherwise be silent.
provider.on('backchannel.error', (ctx, err) => console.log('backchannel logout failed:', err));

provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
