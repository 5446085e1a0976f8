// What each French State platform's core accepts on the wire, for the test provider.
//
// Test-only. The platforms run node `oidc-provider` behind NestJS controllers that validate
// the parameters of some routes against DTOs before oidc-provider sees them; oidc-provider on
// its own is far more lenient (it takes code_challenge, token_type_hint, Basic auth, unknown
// parameters...). `guard` re-creates those DTO checks in front of oidc-provider, so a relying
// party that sends something a real core refuses fails here too, with the same kind of answer
// (an HTML error page at the provider for authorize and end_session, a JSON 400 for revocation).
//
// Facts read (not copied) from the cores' public source:
//   france-connect/sources   back/apps/core-fcp/src/dto/authorize-params.dto.ts (validated with
//                            whitelist + forbidNonWhitelisted + forbidUnknownValues),
//                            back/libs/oidc-provider/src/dto/{revocation-token,logout}-params.dto.ts
//                            (ValidationPipe whitelist + forbidNonWhitelisted),
//                            back/libs/oidc-provider/src/validators/prompt.validator.ts (at least
//                            one prompt value in allowedPrompt),
//                            back/instances/core-fcp-{high,low}/src/config/oidc-provider.ts
//   proconnect-gouv/federation back/apps/core-fca-low/src/dto/{authorize,logout,revocation-token}-params.dto.ts,
//                            back/apps/core-fca-low/src/config/oidc-provider.ts (allowedPrompt)
// Where this is stricter than the cores' code, it follows the platforms' documentation:
// unknown parameters refused on ProConnect (its pipes only strip them; its docs say Y000400),
// and a Basic header refused on the token route (oidc-provider 9 would take it).
//
// Every refusal is written to stderr with the offending parameter NAMES (never their values)
// and as `REFUSED <endpoint> <name,name...>` on stdout, for tests to assert on.

const FC_AUTHORIZE = {
  client_id: { required: true, check: (v) => v.length >= 1 || 'empty' },
  acr_values: { required: true },
  claims: {},
  response_type: { required: true },
  // core-fcp DTO: @MinLength(22)
  nonce: { required: true, check: (v) => v.length >= 22 || 'shorter than 22 characters' },
  state: { required: true },
  redirect_uri: { required: true, check: (v) => isHttpUrl(v) || 'not an http(s) URL' },
  scope: { required: true },
  prompt: { prompt: true },
  idp_hint: {},
  ui_locales: {},
};

const PC_AUTHORIZE = {
  client_id: { required: true },
  acr_values: {},
  claims: {},
  response_type: { required: true },
  response_mode: {},
  // core-fca-low DTO: @IsAscii @Length(1, 512)
  nonce: { check: (v) => (isAscii(v) && v.length >= 1 && v.length <= 512) || 'not 1-512 ASCII characters' },
  login_hint: { check: (v) => isEmail(v) || 'not an email address' },
  siret_hint: { check: (v) => v.length === 14 || 'not exactly 14 characters' },
  state: { required: true },
  redirect_uri: { required: true, check: (v) => /^https?:\/\/[^/].+$/.test(v) || 'not an http(s) URL' },
  scope: { required: true },
  // Only @IsString in the DTO: oidc-provider then answers a value its policy does not know
  // (anything but login, consent, none) with an invalid_request redirect to the service.
  prompt: {},
  idp_hint: {},
  code_challenge: {},
  code_challenge_method: {},
};

// oidc-provider revocation-token-params.dto.ts (FC) and core-fca-low's copy (ProConnect).
const SAFE_STRING = /^[^.*?{}()|[\]\s\\]*$/;
const REVOCATION = {
  token: {
    required: true,
    check: (v) => (v.length >= 43 && SAFE_STRING.test(v)) || 'shorter than 43 characters or not a safe string',
  },
  client_id: { required: true },
  client_secret: {
    required: true,
    check: (v) => (v.length >= 32 && isAscii(v)) || 'shorter than 32 characters or not ASCII',
  },
};

const END_SESSION_FIELDS = {
  post_logout_redirect_uri: { check: (v) => isHttpUrl(v) || 'not an http(s) URL' },
  state: {},
  client_id: {},
  logout_hint: {},
  ui_locales: {},
};

export const PLATFORMS = {
  // FranceConnect+ (core-fcp-high): eIDAS substantial/high, ES256 signed and encrypted tokens.
  fcplus: {
    label: 'FranceConnect+',
    errorCode: 'Y030007',
    allowedPrompt: ['login', 'consent'],
    endpoints: {
      authorize: FC_AUTHORIZE,
      revocation: REVOCATION,
      end_session: { id_token_hint: { required: true, check: (v) => v.length > 0 || 'empty' }, ...END_SESSION_FIELDS },
    },
    // The NestJS controllers route userinfo on GET only.
    userinfoMethods: ['GET'],
  },
  // FranceConnect (core-fcp-low): same DTOs as FC+ (core-fcp app).
  franceconnect: {
    label: 'FranceConnect',
    errorCode: 'Y030007',
    allowedPrompt: ['login', 'consent'],
    endpoints: {
      authorize: FC_AUTHORIZE,
      revocation: REVOCATION,
      end_session: { id_token_hint: { required: true, check: (v) => v.length > 0 || 'empty' }, ...END_SESSION_FIELDS },
    },
    userinfoMethods: ['GET'],
  },
  // ProConnect (core-fca-low). Its ValidationPipes use `whitelist` without forbidNonWhitelisted,
  // but its documentation says any unknown authorize parameter gives Y000400: refused here.
  proconnect: {
    label: 'ProConnect',
    errorCode: 'Y000400',
    allowedPrompt: ['login', 'consent', 'none'],
    endpoints: {
      authorize: PC_AUTHORIZE,
      revocation: REVOCATION,
      // core-fca-low logout-params.dto.ts: id_token_hint is @IsOptional there.
      end_session: { id_token_hint: {}, ...END_SESSION_FIELDS },
    },
    userinfoMethods: ['GET', 'POST'],
  },
};

function isHttpUrl(value) {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

function isAscii(value) {
  return /^[\x00-\x7F]*$/.test(value);
}

function isEmail(value) {
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value);
}

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// Checks `params` (a URLSearchParams) against an endpoint's DTO; returns the problems found as
// [name, reason] pairs, empty when the request would pass the core's validation.
export function problems(platform, endpoint, params) {
  const fields = platform.endpoints[endpoint];
  const found = [];
  const names = [...new Set(params.keys())];
  for (const name of names) {
    const rule = fields[name];
    if (!rule) {
      found.push([name, 'not accepted by the core']);
      continue;
    }
    const values = params.getAll(name);
    if (values.length > 1) {
      found.push([name, 'repeated']);
      continue;
    }
    const [value] = values;
    if (rule.check) {
      const verdict = rule.check(value);
      if (verdict !== true) found.push([name, verdict]);
    }
    if (rule.prompt) {
      // prompt.validator.ts: at least one value among allowedPrompt.
      const asked = value.split(/ +/).filter(Boolean);
      if (!asked.some((v) => platform.allowedPrompt.includes(v))) found.push([name, `values must be among ${platform.allowedPrompt.join(', ')}`]);
    }
  }
  for (const [name, rule] of Object.entries(fields)) {
    if (rule.required && !params.has(name)) found.push([name, 'missing']);
  }
  return found;
}

function refuse(ctx, platform, endpoint, found, { json = false } = {}) {
  const names = found.map(([name]) => name);
  console.error(`refused ${endpoint} (${platform.label} core DTO): `
    + found.map(([name, why]) => `${name} (${why})`).join('; '));
  console.log(`REFUSED ${endpoint} ${names.join(',')}`);
  ctx.status = 400;
  ctx.set('Cache-Control', 'no-store');
  if (json) {
    ctx.type = 'json';
    ctx.body = { error: 'invalid_request', error_description: 'invalid parameter' };
    return;
  }
  ctx.type = 'html';
  ctx.body = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Error</title></head><body>'
    + `<h1>Error ${html(platform.errorCode)}</h1><p>invalid_request: invalid parameter</p>`
    + `<p>Parameters refused: ${names.map(html).join(', ')}</p></body></html>`;
}

async function readForm(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString('utf8');
  // oidc-provider reads an already consumed body from req.body (a string is parsed as a form).
  ctx.req.body = raw;
  return new URLSearchParams(raw);
}

// A koa middleware for `provider.use`, placed before oidc-provider's routes. `routes` maps
// oidc-provider route names to paths (relative to the mount path).
export function guard(platform, routes) {
  return async (ctx, next) => {
    const { path, method } = ctx;
    const isForm = method === 'POST' && ctx.is('application/x-www-form-urlencoded');
    if (path === routes.authorization && (method === 'GET' || method === 'POST')) {
      const params = method === 'GET' ? new URLSearchParams(ctx.querystring) : (isForm ? await readForm(ctx) : new URLSearchParams());
      const found = problems(platform, 'authorize', params);
      if (found.length) return refuse(ctx, platform, 'authorize', found);
    } else if (path === routes.revocation && method === 'POST') {
      const params = isForm ? await readForm(ctx) : new URLSearchParams();
      const found = problems(platform, 'revocation', params);
      // The DTO wants the client's credentials in the body; a Basic header is a second,
      // unvalidated mechanism (and oidc-provider refuses two at once).
      if (ctx.get('authorization')) found.unshift(['authorization', 'header not accepted (client_secret_post only)']);
      if (found.length) return refuse(ctx, platform, 'revocation', found, { json: true });
    } else if (path === routes.token && method === 'POST' && ctx.get('authorization')) {
      // No DTO on the token route: the cores leave it to oidc-provider, whose 9.x takes Basic
      // credentials even for a client_secret_post client (ProConnect's 7.x refused them). The
      // platforms document client_secret_post only: a Basic header is refused here.
      return refuse(ctx, platform, 'token', [['authorization', 'header not accepted (client_secret_post only)']],
        { json: true });
    } else if (path === routes.end_session && (method === 'GET' || method === 'POST')) {
      const params = method === 'GET' ? new URLSearchParams(ctx.querystring) : (isForm ? await readForm(ctx) : new URLSearchParams());
      const found = problems(platform, 'end_session', params);
      if (found.length) return refuse(ctx, platform, 'end_session', found);
    } else if (path === routes.userinfo && !platform.userinfoMethods.includes(method)) {
      console.error(`refused userinfo: method ${method} is not routed by the ${platform.label} core`);
      console.log(`REFUSED userinfo method-${method}`);
      ctx.status = 404;
      ctx.body = 'not found';
      return undefined;
    }
    return next();
  };
}
