// An OpenID provider configured like one of the French State platforms' cores, for interop
// tests, built on node `oidc-provider` (the library those cores run on).
//
// Test-only. PROFILE picks the platform:
//   fcplus         (default) FranceConnect+, core-fcp-high: ES256 signatures, id_token and
//                  userinfo encrypted (RSA-OAEP + A256GCM) to the keys the relying party
//                  publishes at its jwks_uri, acr eidas2/eidas3 via acr_values, pairwise sub,
//                  login and consent asked at every request, no SSO.
//   franceconnect  FranceConnect, core-fcp-low: ES256 or RS256 signatures (client's choice),
//                  userinfo a signed JWT, no encryption (the core's default), acr eidas1,
//                  pairwise sub, login and consent at every request.
//   proconnect     ProConnect, core-fca-low: ES256 or RS256 signatures, no encryption, public
//                  sub, acr asked through `claims` essential values, PKCE S256 accepted,
//                  prompt none/login/consent with a real SSO session (prompt=none signs in
//                  silently when a session exists, gives login_required otherwise), consent
//                  never asked (the core always loads a grant), a refresh token issued.
//   generic        a plain OpenID provider with FC+'s crypto and none of the cores' allow-lists
//                  (oidc-provider alone: PKCE, token_type_hint... accepted), for relying parties
//                  configured without a platform preset.
// In every profile the cores' parameter allow-lists (their DTOs) are enforced in front of
// oidc-provider by tests/interop/platforms.mjs: what a real core refuses is refused here too,
// and printed as `REFUSED <endpoint> <names>` on stdout. The interaction is a tiny form that
// logs in as any login with a chosen acr (then asks for consent on FC and FC+).
//
// Configuration: environment variables, overridden by a JSON object given as first argument:
//   PORT                      port to listen on, on 127.0.0.1 (required)
//   PROFILE                   fcplus (default), franceconnect, proconnect or generic
//   ISSUER                    issuer, default http://127.0.0.1:PORT; a path (e.g. /api/v2) mounts
//                             every endpoint under it, as FC+ does
//   CLIENT_ID, CLIENT_SECRET  the one registered client (client_secret_post)
//   REDIRECT_URI              its redirect_uri (http loopback allowed)
//   POST_LOGOUT_REDIRECT_URI  its post_logout_redirect_uri
//   CLIENT_JWKS_URI           its jwks_uri, fetched when the first token is encrypted
//   CLIENT_METADATA           optional JSON object merged over the client metadata (e.g. to ask
//                             for ECDH-ES instead of RSA-OAEP, or RS256 signatures: setting only
//                             id_token_signed_response_alg sets the userinfo's too)
// Prints `READY <issuer> <profile>` on stdout once listening.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

import { PLATFORMS, guard } from './platforms.mjs';

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
  const profile = get('PROFILE', 'fcplus');
  if (!Object.hasOwn(PLATFORMS, profile) && profile !== 'generic') {
    throw new Error(`provider.mjs: PROFILE must be one of ${Object.keys(PLATFORMS).join(', ')} or generic, not ${profile}`);
  }
  return {
    port,
    profile,
    issuer: get('ISSUER', `http://127.0.0.1:${port}`).replace(/\/$/, ''),
    clientId: get('CLIENT_ID'),
    clientSecret: get('CLIENT_SECRET'),
    redirectUri: get('REDIRECT_URI'),
    postLogoutRedirectUri: get('POST_LOGOUT_REDIRECT_URI'),
    clientJwksUri: get('CLIENT_JWKS_URI', null),
    clientMetadata: typeof extra === 'string' ? JSON.parse(extra) : extra,
  };
}

const config = settings();
const mountPath = new URL(config.issuer).pathname.replace(/\/$/, '');
// null for the generic profile: no core in front of oidc-provider.
const platform = PLATFORMS[config.profile] ?? null;

// The cores' routes (back/libs/oidc-provider/src/enums/oidc-provider-routes.enum.ts).
const ROUTES = {
  authorization: '/authorize',
  token: '/token',
  userinfo: '/userinfo',
  jwks: '/jwks',
  end_session: '/session/end',
  revocation: '/token/revocation',
};

// --- the platforms ---------------------------------------------------------------------------

// FC+ pivot identity claims (core-fcp-high scopes); FC (core-fcp-low) adds given_name_array.
const FC_CLAIMS = {
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
const withArray = (list) => [...list.slice(0, 1), 'given_name_array', ...list.slice(1)];
const FC_LOW_CLAIMS = {
  ...FC_CLAIMS,
  given_name: ['given_name', 'given_name_array'],
  profile: withArray(FC_CLAIMS.profile),
  identite_pivot: withArray(FC_CLAIMS.identite_pivot),
  idp_id: ['idp_id'],
};
// core-fca-low: libs/oidc-provider oidc-provider-config.service.ts claims (the usual ones).
const PC_CLAIMS = {
  acr: null,
  auth_time: null,
  iss: null,
  sid: null,
  amr: ['amr'],
  uid: ['uid'],
  openid: ['sub'],
  given_name: ['given_name'],
  email: ['email'],
  phone: ['phone_number'],
  organizational_unit: ['organizational_unit'],
  siren: ['siren'],
  siret: ['siret'],
  usual_name: ['usual_name'],
  belonging_population: ['belonging_population'],
  idp_id: ['idp_id'],
  idp_acr: ['idp_acr'],
  roles: ['roles'],
  organization_label: ['organization_label'],
  custom: ['custom'],
};

// A fixed, fictional identity in FC pivot-identity format; sub is the login typed in.
const FC_IDENTITY = {
  given_name: 'Angela Claire Louise',
  family_name: 'DUBOIS',
  birthdate: '1962-08-24',
  gender: 'female',
  birthplace: '75107',
  birthcountry: '99100',
  email: 'angela.dubois@example.com',
  preferred_username: 'MARTIN',
};

function pcIdentity(login, acr) {
  return {
    given_name: 'Angela',
    usual_name: 'DUBOIS',
    email: login.includes('@') ? login : 'angela.dubois@example.gouv.fr',
    uid: login,
    siret: '13002526500013',
    siren: '130025265',
    organization_label: 'Direction interministerielle du numerique',
    idp_id: 'fia1v2',
    idp_acr: acr,
    roles: ['agent_public'],
    phone_number: '0123456789',
  };
}

// core-fca-low config supportedAcrValues.
const PC_ACR_VALUES = ['eidas0', 'eidas0-mfa', 'eidas1', 'eidas1-mfa', 'eidas2', 'eidas3',
  'https://proconnect.gouv.fr/assurance/certification-dirigeant'];

const FC_ENCRYPTION_JWA = {
  idTokenEncryptionAlgValues: ['ECDH-ES', 'RSA-OAEP'],
  idTokenEncryptionEncValues: ['A256GCM'],
  userinfoEncryptionAlgValues: ['ECDH-ES', 'RSA-OAEP'],
  userinfoEncryptionEncValues: ['A256GCM'],
};

const PROFILES = {
  fcplus: {
    acrValues: ['eidas2', 'eidas3'],
    // FC+ keeps the lowest requested level and defaults to eidas3.
    defaultAcr: 'eidas3',
    subjectType: 'pairwise',
    claims: FC_CLAIMS,
    identity: () => FC_IDENTITY,
    signingAlgs: ['ES256'],
    encryption: true,
    everyTime: ['login', 'consent'],
    client: {
      id_token_signed_response_alg: 'ES256',
      id_token_encrypted_response_alg: 'RSA-OAEP',
      id_token_encrypted_response_enc: 'A256GCM',
      userinfo_signed_response_alg: 'ES256',
      userinfo_encrypted_response_alg: 'RSA-OAEP',
      userinfo_encrypted_response_enc: 'A256GCM',
      // FC+ answers eidas3 when acr_values is absent; this also keeps acr in the id_token then.
      default_acr_values: ['eidas3'],
    },
    jwa: {
      // FC+ uses the first alg and enc of each list; the others let tests/test_interop_node_jose.py
      // check every JWE algorithm fcplus_wsgi implements against this independent one.
      idTokenEncryptionAlgValues: ['RSA-OAEP', 'ECDH-ES', 'RSA-OAEP-256'],
      idTokenEncryptionEncValues: ['A256GCM', 'A128GCM', 'A128CBC-HS256', 'A256CBC-HS512'],
      userinfoEncryptionAlgValues: ['RSA-OAEP', 'ECDH-ES', 'RSA-OAEP-256'],
      userinfoEncryptionEncValues: ['A256GCM', 'A128GCM', 'A128CBC-HS256', 'A256CBC-HS512'],
    },
    // core-fcp-high ttl (Grant 30 s there; 600 s here keeps slow CI runs from expiring it).
    ttl: { AuthorizationCode: 30, AccessToken: 60, IdToken: 60, Interaction: 600, Session: 600, Grant: 600 },
  },
  franceconnect: {
    acrValues: ['eidas1'],
    defaultAcr: 'eidas1',
    subjectType: 'pairwise',
    claims: FC_LOW_CLAIMS,
    identity: () => ({ ...FC_IDENTITY, given_name_array: FC_IDENTITY.given_name.split(' ') }),
    // The core also enables HS256 (its legacy default); FC v2 documents ES256 and RS256 only.
    signingAlgs: ['ES256', 'RS256'],
    // OidcProvider_USE_ENCRYPTION, off unless FC configures it for a service.
    encryption: false,
    everyTime: ['login', 'consent'],
    client: {
      id_token_signed_response_alg: 'ES256',
      userinfo_signed_response_alg: 'ES256',
      default_acr_values: ['eidas1'],
    },
    jwa: FC_ENCRYPTION_JWA,
    ttl: { AuthorizationCode: 30, AccessToken: 60, IdToken: 60, Interaction: 1800, Session: 1800, Grant: 1800 },
  },
  proconnect: {
    acrValues: PC_ACR_VALUES,
    defaultAcr: 'eidas1',
    subjectType: 'public',
    claims: PC_CLAIMS,
    identity: pcIdentity,
    signingAlgs: ['ES256', 'RS256'],
    // Enabled in the core's oidc-provider config, but no ProConnect service registers an
    // encryption alg: tokens are signed only.
    encryption: true,
    everyTime: [],
    client: {
      id_token_signed_response_alg: 'ES256',
      userinfo_signed_response_alg: 'ES256',
      grant_types: ['authorization_code', 'refresh_token'],
    },
    jwa: FC_ENCRYPTION_JWA,
    issueRefreshToken: () => true,
    // The core always loads a grant holding the requested scopes and claims: no consent page.
    async loadExistingGrant(ctx) {
      if (!ctx.oidc.session || !ctx.oidc.client || !ctx.oidc.params) return undefined;
      const grantId = ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      grant ??= new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope(String(ctx.oidc.params.scope));
      grant.addOIDCClaims([...(ctx.oidc.requestParamClaims || [])]);
      await grant.save();
      return grant;
    },
    // ProConnect sessions last hours (12 h documented); code and tokens keep oidc-provider's
    // defaults, as the core does not set them.
    ttl: { Interaction: 600, Session: 43200, Grant: 43200 },
  },
};

PROFILES.generic = PROFILES.fcplus;

const profile = PROFILES[config.profile];

// FC and FC+: the acr the IdP would assert, from acr_values (lowest known level).
function fcAcrFor(acrValues) {
  const requested = (acrValues ?? '').split(' ').filter((v) => profile.acrValues.includes(v));
  return requested.length ? profile.acrValues.find((v) => requested.includes(v)) : profile.defaultAcr;
}

// ProConnect: the essential acr values asked in `claims` (id_token.acr value / values), or null.
function essentialAcrs(claimsParam) {
  let request;
  try {
    request = JSON.parse(claimsParam ?? 'null')?.id_token?.acr;
  } catch {
    return null;
  }
  if (!request?.essential) return null;
  if (Array.isArray(request.values)) return request.values.map(String);
  return typeof request.value === 'string' ? [request.value] : null;
}

// The level prefilled on the login form: what the platform would end up asserting.
function acrFor(params) {
  if (config.profile !== 'proconnect') return fcAcrFor(params.acr_values);
  const wanted = essentialAcrs(params.claims)
    ?? String(params.acr_values ?? '').split(' ').filter(Boolean);
  return wanted.find((v) => PC_ACR_VALUES.includes(v)) ?? 'eidas1';
}

function signingKeys() {
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const keys = [{ ...ec, use: 'sig', alg: 'ES256', kid: crypto.randomBytes(8).toString('hex') }];
  if (profile.signingAlgs.includes('RS256')) {
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    keys.push({ ...rsa, use: 'sig', alg: 'RS256', kid: crypto.randomBytes(8).toString('hex') });
  }
  return keys;
}

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${html(title)}</title></head>`
    + `<body><h1>${html(title)}</h1>${body}</body></html>`;
}

// FC and FC+ keep no SSO session for the relying party: every authorization request shows the
// login and the consent pages again (their cores force prompt=login consent).
// ProConnect reuses its session, except when the essential acr asked is one of
// acrValuesThatRequireNewSession (eidas2, eidas3): then the user signs in again.
const { Check, base: basePolicy } = interactionPolicy;
const policy = basePolicy();
for (const name of profile.everyTime) {
  policy.get(name).checks.add(new Check(`core_every_time_${name}`, `the core asks for ${name} at every request`,
    (ctx) => (ctx.oidc.result?.[name] ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT)));
}
if (config.profile === 'proconnect') {
  policy.get('login').checks.add(new Check('acr_requires_new_session', 'this acr requires a new session',
    (ctx) => {
      if (ctx.oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      const asked = essentialAcrs(ctx.oidc.params.claims);
      return asked && ['eidas2', 'eidas3'].includes(ctx.oidc.session?.acr)
        ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }));
}

const clientMetadata = { ...config.clientMetadata };
if (clientMetadata.id_token_signed_response_alg && !clientMetadata.userinfo_signed_response_alg) {
  clientMetadata.userinfo_signed_response_alg = clientMetadata.id_token_signed_response_alg;
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
    subject_type: profile.subjectType,
    ...(config.clientJwksUri ? { jwks_uri: config.clientJwksUri } : {}),
    ...profile.client,
    ...clientMetadata,
  }],
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'ES256',
    token_endpoint_auth_method: 'client_secret_post',
  },
  // The cores: client_secret_post and private_key_jwt; never client_secret_basic.
  clientAuthMethods: ['client_secret_post', 'private_key_jwt'],
  clientBasedCORS: () => false,
  jwks: { keys: signingKeys() },
  acrValues: profile.acrValues,
  subjectTypes: [profile.subjectType],
  // The cores compute the service's sub themselves (per service on FC and FC+) before
  // oidc-provider sees it, and pass it through here; the login typed in plays that sub.
  pairwiseIdentifier: (ctx, accountId) => accountId,
  scopes: ['openid'],
  claims: profile.claims,
  responseTypes: ['code'],
  routes: ROUTES,
  // libs/oidc-provider config service of both cores. FC and FC+ still refuse code_challenge:
  // their authorize DTO does not list it (the guard below).
  pkce: { methods: ['S256'], required: () => false },
  ...(profile.issueRefreshToken ? { issueRefreshToken: profile.issueRefreshToken } : {}),
  ...(profile.loadExistingGrant ? { loadExistingGrant: profile.loadExistingGrant } : {}),
  extraParams: config.profile === 'proconnect' ? ['idp_hint', 'siret_hint'] : ['idp_hint'],
  cookies: {
    // Distinct names: the relying party under test shares the 127.0.0.1 cookie jar.
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_resume' },
    keys: [crypto.randomBytes(32).toString('base64url')],
  },
  enabledJWA: {
    idTokenSigningAlgValues: profile.signingAlgs,
    userinfoSigningAlgValues: profile.signingAlgs,
    clientAuthSigningAlgValues: ['ES256'],
    ...profile.jwa,
  },
  features: {
    devInteractions: { enabled: false },
    encryption: { enabled: profile.encryption },
    jwtUserinfo: { enabled: true },
    revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
    rpInitiatedLogout: { enabled: true },
    claimsParameter: { enabled: true },
    dPoP: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
    resourceIndicators: { enabled: false },
  },
  ttl: profile.ttl,
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
        return { sub, ...profile.identity(sub, ctx.oidc.session?.acr ?? profile.defaultAcr) };
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

// The platform's DTO checks, before oidc-provider's routes.
if (platform) provider.use(guard(platform, ROUTES));

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// The interaction: GET shows the login form (login + acr, acr prefilled with the level the
// platform would assert) or the consent form; POST with prompt=login|consent finishes that
// step; POST .../abort ends it with access_denied.
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
        + `<input type="text" name="acr" value="${html(acrFor(params))}">`
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
    let acr = form.get('acr') || acrFor(params);
    if (config.profile === 'proconnect') {
      // core-fca-low: an IdP acr it does not support counts as eidas1; one outside the
      // essential values asked ends the login with access_denied.
      if (!PC_ACR_VALUES.includes(acr)) acr = 'eidas1';
      const asked = essentialAcrs(params.claims);
      if (asked && !asked.includes(acr)) {
        await provider.interactionFinished(ctx.req, ctx.res, {
          error: 'access_denied', error_description: 'requested ACRs could not be satisfied',
        }, { mergeWithLastSubmission: false });
        return;
      }
    }
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId, acr, amr: ['pwd'] },
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
  console.log(`READY ${config.issuer} ${config.profile}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
