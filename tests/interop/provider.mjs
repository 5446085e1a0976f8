// A FranceConnect+-like OpenID provider for interop tests, built on node `oidc-provider`.
//
// Test-only. It signs id_tokens and userinfo with ES256 and encrypts them (RSA-OAEP + A256GCM)
// to the keys the relying party publishes at its jwks_uri, like FC+ does. The interaction is a
// tiny form that logs in as any login with a chosen acr, then asks for consent.
//
// Configuration: environment variables, overridden by a JSON object given as first argument:
//   PORT                      port to listen on, on 127.0.0.1 (required)
//   ISSUER                    issuer, default http://127.0.0.1:PORT; a path (e.g. /api/v2) mounts
//                             every endpoint under it, as FC+ does
//   CLIENT_ID, CLIENT_SECRET  the one registered client (client_secret_post)
//   REDIRECT_URI              its redirect_uri (http loopback allowed)
//   POST_LOGOUT_REDIRECT_URI  its post_logout_redirect_uri
//   CLIENT_JWKS_URI           its jwks_uri, fetched when the first token is encrypted
//   CLIENT_METADATA           optional JSON object merged over the client metadata (e.g. to ask
//                             for ECDH-ES instead of RSA-OAEP)
// Prints `READY <issuer>` on stdout once listening.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

function settings() {
  const fromArgv = process.argv[2] ? JSON.parse(process.argv[2]) : {};
  const get = (name, fallback) => {
    const value = fromArgv[name] ?? process.env[name] ?? fallback;
    if (value === undefined || value === '') {
      throw new Error(`provider.mjs: missing setting ${name} (environment variable or argv JSON)`);
    }
    return value;
  };
  const port = Number.parseInt(get('PORT'), 10);
  const extra = fromArgv.CLIENT_METADATA ?? process.env.CLIENT_METADATA ?? '{}';
  return {
    port,
    issuer: get('ISSUER', `http://127.0.0.1:${port}`).replace(/\/$/, ''),
    clientId: get('CLIENT_ID'),
    clientSecret: get('CLIENT_SECRET'),
    redirectUri: get('REDIRECT_URI'),
    postLogoutRedirectUri: get('POST_LOGOUT_REDIRECT_URI'),
    clientJwksUri: get('CLIENT_JWKS_URI'),
    clientMetadata: typeof extra === 'string' ? JSON.parse(extra) : extra,
  };
}

const config = settings();
const mountPath = new URL(config.issuer).pathname.replace(/\/$/, '');

// eIDAS levels FC+ accepts, lowest first. FC+ keeps the lowest requested level and defaults to
// eidas3 when acr_values holds none it knows.
const ACR_VALUES = ['eidas2', 'eidas3'];

function acrFor(acrValues) {
  const requested = (acrValues ?? '').split(' ').filter((v) => ACR_VALUES.includes(v));
  return requested.length ? ACR_VALUES.find((v) => requested.includes(v)) : 'eidas3';
}

// A fixed, fictional identity in FC+ pivot-identity format; sub is the login typed in.
const IDENTITY = {
  given_name: 'Angela Claire Louise',
  family_name: 'DUBOIS',
  birthdate: '1962-08-24',
  gender: 'female',
  birthplace: '75107',
  birthcountry: '99100',
  email: 'angela.dubois@example.com',
  preferred_username: 'MARTIN',
};

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, use: 'sig', alg: 'ES256', kid: crypto.randomBytes(8).toString('hex') };
}

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${html(title)}</title></head>`
    + `<body><h1>${html(title)}</h1>${body}</body></html>`;
}

const claims = {
  acr: null,
  amr: null,
  auth_time: null,
  iss: null,
  sid: null,
  openid: ['sub'],
  given_name: ['given_name'],
  family_name: ['family_name'],
  birthdate: ['birthdate'],
  gender: ['gender'],
  birthplace: ['birthplace'],
  birthcountry: ['birthcountry'],
  email: ['email'],
  preferred_username: ['preferred_username'],
  profile: ['given_name', 'family_name', 'birthdate', 'gender', 'preferred_username'],
  birth: ['birthplace', 'birthcountry'],
  identite_pivot: ['given_name', 'family_name', 'birthdate', 'gender', 'birthplace', 'birthcountry'],
};

// FC+ keeps no SSO session for the relying party: every authorization request shows the login
// and the consent pages again (its core forces prompt=login consent).
const { Check, base: basePolicy } = interactionPolicy;
const policy = basePolicy();
for (const name of ['login', 'consent']) {
  policy.get(name).checks.add(new Check(`fcplus_every_time_${name}`, `FC+ asks for ${name} at every request`,
    (ctx) => (ctx.oidc.result?.[name] ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT)));
}

const provider = new Provider(config.issuer, {
  clients: [{
    client_id: config.clientId,
    client_secret: config.clientSecret,
    redirect_uris: [config.redirectUri],
    post_logout_redirect_uris: [config.postLogoutRedirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'ES256',
    id_token_encrypted_response_alg: 'RSA-OAEP',
    id_token_encrypted_response_enc: 'A256GCM',
    userinfo_signed_response_alg: 'ES256',
    userinfo_encrypted_response_alg: 'RSA-OAEP',
    userinfo_encrypted_response_enc: 'A256GCM',
    jwks_uri: config.clientJwksUri,
    // FC+ answers eidas3 when acr_values is absent; this also keeps acr in the id_token then.
    default_acr_values: ['eidas3'],
    ...config.clientMetadata,
  }],
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'ES256',
    token_endpoint_auth_method: 'client_secret_post',
  },
  clientAuthMethods: ['client_secret_post', 'private_key_jwt'],
  clientBasedCORS: () => false,
  jwks: { keys: [signingKey()] },
  acrValues: ACR_VALUES,
  scopes: ['openid'],
  claims,
  responseTypes: ['code'],
  pkce: { required: () => false },
  cookies: {
    // Distinct names: the relying party under test shares the 127.0.0.1 cookie jar.
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_resume' },
    keys: [crypto.randomBytes(32).toString('base64url')],
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['ES256'],
    userinfoSigningAlgValues: ['ES256'],
    clientAuthSigningAlgValues: ['ES256'],
    // FC+ uses the first alg and enc of each list; the others let tests/test_interop_node_jose.py
    // check every JWE algorithm fcplus_wsgi implements against this independent one.
    idTokenEncryptionAlgValues: ['RSA-OAEP', 'ECDH-ES', 'RSA-OAEP-256'],
    idTokenEncryptionEncValues: ['A256GCM', 'A128GCM', 'A128CBC-HS256', 'A256CBC-HS512'],
    userinfoEncryptionAlgValues: ['RSA-OAEP', 'ECDH-ES', 'RSA-OAEP-256'],
    userinfoEncryptionEncValues: ['A256GCM', 'A128GCM', 'A128CBC-HS256', 'A256CBC-HS512'],
  },
  features: {
    devInteractions: { enabled: false },
    encryption: { enabled: true },
    jwtUserinfo: { enabled: true },
    revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    rpInitiatedLogout: { enabled: true },
    claimsParameter: { enabled: true },
    dPoP: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
    resourceIndicators: { enabled: false },
  },
  // FC+ core lifetimes (seconds).
  ttl: {
    AuthorizationCode: 30,
    AccessToken: 60,
    IdToken: 60,
    Interaction: 600,
    Session: 600,
    Grant: 600,
  },
  interactions: {
    policy,
    url: (ctx, interaction) => `${mountPath}/interaction/${interaction.uid}`,
  },
  // oidc-provider refuses to fetch from special-use addresses (SSRF protection), loopback
  // included; the relying party under test serves its jwks_uri on 127.0.0.1, so let those through.
  // The fetch keeps oidc-provider's 2.5 s timeout: a relying party that cannot answer its
  // jwks_uri while it waits on the token response fails with "client JSON Web Key Set failed
  // to be refreshed". The keys are then cached for max(60 s, Cache-Control max-age).
  fetch(url, options) {
    const { hostname } = new URL(url);
    if (['127.0.0.1', 'localhost', '[::1]'].includes(hostname)) {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    }
    return globalThis.fetch(url, options);
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, ...IDENTITY };
      },
    };
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', Object.entries(out)
      .map(([key, value]) => `<pre><strong>${html(key)}</strong>: ${html(value)}</pre>`).join(''));
  },
});

// Errors go to stderr, which the Python helper captures for failure messages.
for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
  'revocation.error', 'end_session.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (ctx, err) => console.error(event, err));
}

// Revocations go to stdout (kind and client only, never the token), so tests can observe
// at the provider that the service's logout revoked its access token.
// (oidc-provider 9 emits `access_token.destroyed` when revocation destroys an access token.)
provider.on('access_token.destroyed', (token) => console.log(`REVOKED ${token.kind} ${token.clientId}`));

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// The interaction: GET shows the login form (login + acr, acr prefilled with the level FC+
// would pick) or the consent form; POST with prompt=login|consent finishes that step; POST
// .../abort ends it with access_denied.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([\w-]+)(\/abort)?$/.exec(ctx.path);
  if (!match) {
    await next();
    return;
  }
  ctx.set('Cache-Control', 'no-store');
  const [, uid, abort] = match;
  const action = `${mountPath}/interaction/${uid}`;
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;

  if (ctx.method === 'GET' && !abort) {
    const abortForm = `<form method="post" action="${action}/abort"><button type="submit">Cancel</button></form>`;
    ctx.type = 'html';
    if (prompt.name === 'login') {
      ctx.body = page('Sign-in', `<form method="post" action="${action}">`
        + '<input type="hidden" name="prompt" value="login">'
        + `<input type="text" name="login" value="${html(params.login_hint ?? '')}">`
        + `<input type="text" name="acr" value="${acrFor(params.acr_values)}">`
        + '<button type="submit">Sign-in</button></form>' + abortForm);
    } else if (prompt.name === 'consent') {
      ctx.body = page('Consent', `<p>${html(params.client_id)} asks for: ${html(params.scope)}</p>`
        + `<form method="post" action="${action}">`
        + '<input type="hidden" name="prompt" value="consent">'
        + '<button type="submit">Continue</button></form>' + abortForm);
    } else {
      ctx.throw(501, `prompt ${prompt.name} not implemented`);
    }
    return;
  }
  if (ctx.method !== 'POST') ctx.throw(405);
  // interactionFinished writes the 303 and ends the response itself.
  if (abort) {
    await provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  const form = await readForm(ctx.req);
  if (form.get('prompt') === 'login' && prompt.name === 'login') {
    const accountId = form.get('login');
    if (!accountId) throw new errors.InvalidRequest('login is required');
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId, acr: form.get('acr') || acrFor(params.acr_values), amr: ['pwd'] },
    }, { mergeWithLastSubmission: false });
  } else if (form.get('prompt') === 'consent' && prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId: await grant.save() } }, {
      mergeWithLastSubmission: true,
    });
  } else {
    ctx.throw(400, `unexpected prompt ${form.get('prompt')} (expected ${prompt.name})`);
  }
});

const handler = provider.callback();
const server = http.createServer((req, res) => {
  if (mountPath) {
    if (req.url !== mountPath && !req.url.startsWith(`${mountPath}/`) && !req.url.startsWith(`${mountPath}?`)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    req.originalUrl = req.url;
    req.url = req.url.slice(mountPath.length) || '/';
  }
  handler(req, res);
});

server.listen(config.port, '127.0.0.1', () => {
  console.log(`READY ${config.issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
