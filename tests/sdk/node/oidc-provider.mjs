// A real OpenID provider for the sign-in tests: the certified `oidc-provider`
// package on an ephemeral port, with one confidential client and its
// development login pages (any login, any password). The login is the
// account's e-mail; logins starting with `unverified` get
// `email_verified: false`.
//
// Run directly (`node oidc-provider.mjs <redirect-uri>`) it prints its issuer URL.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'accessd-test';

export async function startProvider(redirectUri) {
  const clientSecret = randomBytes(24).toString('hex');
  const http = createServer();
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${http.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    pkce: { required: () => true },
    // The e-mail in the ID token itself, not only at the userinfo endpoint.
    conformIdTokenClaims: false,
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: id, email_verified: !id.startsWith('unverified'), name: id };
        },
      };
    },
  });
  http.on('request', provider.callback());
  const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  return {
    issuer,
    clientSecret,
    discovery,
    stop: () => new Promise((resolve) => { http.closeAllConnections(); http.close(resolve); }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = await startProvider(process.argv[2] ?? 'http://127.0.0.1/cdn-cgi/access/callback');
  console.log(started.issuer);
}
