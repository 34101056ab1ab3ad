// A real OAuth 2.0 server for gate's tests: oidc-provider with one native public client,
// PKCE required, rotating refresh tokens and the development sign-in pages, served on
// X's paths (/i/oauth2/authorize, /2/oauth2/token, /2/oauth2/revoke) plus an X-shaped
// `GET /2/users/me` that asks the provider whether the bearer token is valid.
//
// usage: node server.mjs [--port N] [--access-ttl SECONDS] [--lifetime SECONDS]
// Binds 127.0.0.1 only, prints `listening http://127.0.0.1:PORT` on stdout, then one line per
// grant (`grant.success refresh_token`, `grant.error invalid_grant`, `grant.revoked`, `users.me 200`). Exits when stdin
// closes or after --lifetime seconds (default 120).
import http from 'node:http';
import Provider from 'oidc-provider';

const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}
const port = option('--port', 0);
const accessTtl = option('--access-ttl', 3600);
const lifetime = option('--lifetime', 120);

const log = (line) => process.stdout.write(`${line}\n`);

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address();
  const issuer = `http://127.0.0.1:${bound}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'gate-test',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // Native clients may use any port on a loopback redirect (RFC 8252 §7.3).
      redirect_uris: ['http://127.0.0.1/callback'],
    }],
    scopes: ['openid', 'offline_access', 'tweet.read', 'tweet.write', 'users.read',
      'offline.access', 'media.write'],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // X's scope for refresh tokens is `offline.access`.
    issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
      && (code.scopes.has('offline.access') || code.scopes.has('offline_access')),
    ttl: { AccessToken: accessTtl, AuthorizationCode: 60, RefreshToken: 3600, Grant: 3600,
      Interaction: 600, Session: 3600 },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
    },
    routes: {
      authorization: '/i/oauth2/authorize',
      token: '/2/oauth2/token',
      revocation: '/2/oauth2/revoke',
    },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  });
  provider.on('grant.success', (ctx) => log(`grant.success ${ctx.oidc.params.grant_type}`));
  provider.on('grant.error', (_ctx, err) => log(`grant.error ${err.error}`));
  provider.on('grant.revoked', () => log('grant.revoked'));
  provider.on('server_error', (_ctx, err) => log(`server_error ${err}`));
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    if (req.method === 'GET' && req.url === '/2/users/me') {
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? await provider.AccessToken.find(auth.slice(7)) : undefined;
      if (!token || token.isExpired) {
        log('users.me 401');
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ title: 'Unauthorized', status: 401 }));
        return;
      }
      log('users.me 200');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: { id: '1', name: token.accountId, username: token.accountId } }));
      return;
    }
    callback(req, res);
  });
  log(`listening ${issuer}`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), lifetime * 1000).unref();
