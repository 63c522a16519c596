//! A fake of The Things Stack (TTS) identity server, account app and console,
//! for black-box tests of the console sign-in bridge. It is one axum server
//! on `127.0.0.1` (port 0) with in-memory state the test can set up and
//! inspect; nothing of idgate is used to build it.
//!
//! It follows The Things Stack **v3.32.1** (`TheThingsNetwork/lorawan-stack`
//! at commit `1d2182161975`), read from its source, never run:
//!
//! * errors: `pkg/errors/{definitions,errors,http,json,grpc,conversion}.go`,
//!   `pkg/ttnpb/errors.go`, `pkg/webhandlers/error.go` (the body is the gRPC
//!   status as JSON with one `ttn.lorawan.v3.ErrorDetails`; `/api/v3` answers
//!   it compact with `WWW-Authenticate` on 401 as grpc-gateway does, the
//!   account app and console answer it tab-indented);
//! * auth: `pkg/identityserver/entity_access.go`, `rights.go`,
//!   `pkg/auth/auth.go`, `pkg/auth/rights/*.go`, `pkg/ttnpb/rights.go`,
//!   `pkg/webmiddleware/{cookie_auth,csrf}.go`;
//! * users: `pkg/identityserver/user_registry.go`, `user_access.go`,
//!   `email_validation_registry.go`, `bunstore/{user,login_token}_store.go`,
//!   `store/errors.go`, `blocklist/builtin.go` (all 731 IDs),
//!   `pkg/util/store/error.go`, `pkg/ttnpb/{user.pb.validate,user_validators,
//!   field_mask_validation,public}.go`, `pkg/validate/email.go`,
//!   `pkg/ttnpb/user_services.pb.gw.go`, the jsonplugin time layout;
//! * account app and OAuth: `pkg/account/{server,user,middleware}.go`,
//!   `pkg/account/session/session.go`, `pkg/web/cookie/cookie.go`,
//!   `pkg/oauth/{server,oauth,middleware,user}.go`;
//! * console: `pkg/console/console.go`, `pkg/web/oauthclient/*.go`;
//! * routing: `pkg/web/web.go` (gorilla/mux cleans the decoded path with a
//!   301, `PrefixWithRedirect` answers 308 for a bare mount), grpc-gateway's
//!   legacy unescaping (routes on the fully decoded path).
//!
//! Stand-ins and simplifications, on purpose:
//!
//! * **The console is not the real SPA.** `/console/...` answers a tiny HTML
//!   page saying `Signed in as <user_id>` with a sign-out link when the
//!   browser's `_console_auth` holds a live access token, and otherwise
//!   redirects server-side to `/console/login/ttn-stack?next=<path>` (the
//!   real SPA does that in JavaScript). The callback redirects to the console
//!   root (default `/console`, as if `console.ui.canonical-url` were the
//!   origin the browser used) plus `next`.
//! * Cookie values (`_session`, `_console_state`, `_console_auth`) are opaque
//!   values MACed with a per-instance key, not gorilla/securecookie; a new
//!   fake does not accept an older fake's cookies (like a stack restart
//!   without fixed cookie keys). The CSRF token is the `_csrf` cookie value
//!   itself (gorilla/csrf masks it); send it back as `X-CSRF-Token`.
//! * Every API key and access token carries `RIGHT_ALL`; there are no
//!   memberships, so applications lists are empty. `<mount>/token`, refresh
//!   tokens (`/console/api/auth/token` hands out the current access token
//!   while it lives), user deletion over the API and the console's own CSRF
//!   are not modelled. JSON object keys come out sorted and rights lists in a
//!   fixed order (the stack's order is random and its JSON whitespace varies).
//! * `/healthz` answers `ok` (the stack's health-go JSON is not copied).
//!
//! Where the stack's source surprises (kept on purpose): an empty
//! applications list is `{}`; a bare `/console` or `<mount>` is a 308 to the
//! same path with a slash; `<mount>/logout` with an unknown `access_token_id`
//! redirects to `<mount>`, not the console; a non-admin key may read another
//! user's public fields (`name`, `state`, `admin`, ...); an unauthenticated
//! `GET /api/v3/auth_info` is 200 `{}`; a self-registered user is
//! `STATE_APPROVED` unless admin approval is required.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rand::RngCore;
use regex::Regex;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// A `RIGHT_ALL` API key of the admin user `admin` (`NNSXS.<id>.<secret>`).
pub const ADMIN_KEY: &str = "NNSXS.LYTXSLSS24OQZXA7V2XLMX4ECK4YZKL5DW3WBOA.\
PA3X3GMEYEUGQJ5HMCLNKZN4L2WO4V64F2CNFDOBWHLIVTXMWX4Q";

// Token type prefixes: base32 of "key", "acc", "ssn", "aut" (pkg/auth/auth.go).
const KEY: &str = "NNSXS";
const ACC: &str = "MFRWG";
const SSN: &str = "ONZW4";
const AUT: &str = "MF2XI";
const REF: &str = "OJSWM";
const SITE: &str = "The Things Stack for LoRaWAN";
const STATES: [&str; 5] = [
    "STATE_REQUESTED",
    "STATE_APPROVED",
    "STATE_REJECTED",
    "STATE_FLAGGED",
    "STATE_SUSPENDED",
];
const RIGHTS: &str = "RIGHT_USER_INFO RIGHT_USER_SETTINGS_BASIC RIGHT_USER_SETTINGS_API_KEYS
RIGHT_USER_DELETE RIGHT_USER_AUTHORIZED_CLIENTS RIGHT_USER_APPLICATIONS_LIST
RIGHT_USER_APPLICATIONS_CREATE RIGHT_USER_GATEWAYS_LIST RIGHT_USER_GATEWAYS_CREATE
RIGHT_USER_CLIENTS_LIST RIGHT_USER_CLIENTS_CREATE RIGHT_USER_ORGANIZATIONS_LIST
RIGHT_USER_ORGANIZATIONS_CREATE RIGHT_USER_NOTIFICATIONS_READ RIGHT_USER_ALL RIGHT_APPLICATION_INFO
RIGHT_APPLICATION_SETTINGS_BASIC RIGHT_APPLICATION_SETTINGS_API_KEYS
RIGHT_APPLICATION_SETTINGS_COLLABORATORS RIGHT_APPLICATION_SETTINGS_PACKAGES
RIGHT_APPLICATION_DELETE RIGHT_APPLICATION_DEVICES_READ RIGHT_APPLICATION_DEVICES_WRITE
RIGHT_APPLICATION_DEVICES_READ_KEYS RIGHT_APPLICATION_DEVICES_WRITE_KEYS
RIGHT_APPLICATION_TRAFFIC_READ RIGHT_APPLICATION_TRAFFIC_UP_WRITE
RIGHT_APPLICATION_TRAFFIC_DOWN_WRITE RIGHT_APPLICATION_LINK RIGHT_APPLICATION_ALL RIGHT_CLIENT_ALL
RIGHT_CLIENT_INFO RIGHT_CLIENT_SETTINGS_BASIC RIGHT_CLIENT_SETTINGS_COLLABORATORS
RIGHT_CLIENT_DELETE RIGHT_GATEWAY_INFO RIGHT_GATEWAY_SETTINGS_BASIC RIGHT_GATEWAY_SETTINGS_API_KEYS
RIGHT_GATEWAY_SETTINGS_COLLABORATORS RIGHT_GATEWAY_DELETE RIGHT_GATEWAY_TRAFFIC_READ
RIGHT_GATEWAY_TRAFFIC_DOWN_WRITE RIGHT_GATEWAY_LINK RIGHT_GATEWAY_STATUS_READ
RIGHT_GATEWAY_LOCATION_READ RIGHT_GATEWAY_WRITE_SECRETS RIGHT_GATEWAY_READ_SECRETS
RIGHT_GATEWAY_ALL RIGHT_ORGANIZATION_INFO RIGHT_ORGANIZATION_SETTINGS_BASIC
RIGHT_ORGANIZATION_SETTINGS_API_KEYS RIGHT_ORGANIZATION_SETTINGS_MEMBERS RIGHT_ORGANIZATION_DELETE
RIGHT_ORGANIZATION_APPLICATIONS_LIST RIGHT_ORGANIZATION_APPLICATIONS_CREATE
RIGHT_ORGANIZATION_GATEWAYS_LIST RIGHT_ORGANIZATION_GATEWAYS_CREATE
RIGHT_ORGANIZATION_CLIENTS_LIST RIGHT_ORGANIZATION_CLIENTS_CREATE
RIGHT_ORGANIZATION_ADD_AS_COLLABORATOR RIGHT_ORGANIZATION_ALL RIGHT_SEND_INVITES RIGHT_ALL";
/// `ttnpb.UserFieldPathsNested`.
const USER_PATHS: &str = "admin attributes console_preferences console_preferences.console_theme
console_preferences.dashboard_layouts console_preferences.dashboard_layouts.api_key
console_preferences.dashboard_layouts.application console_preferences.dashboard_layouts.collaborator
console_preferences.dashboard_layouts.end_device console_preferences.dashboard_layouts.gateway
console_preferences.dashboard_layouts.organization console_preferences.dashboard_layouts.overview
console_preferences.dashboard_layouts.user console_preferences.sort_by
console_preferences.sort_by.api_key console_preferences.sort_by.application
console_preferences.sort_by.collaborator console_preferences.sort_by.end_device
console_preferences.sort_by.gateway console_preferences.sort_by.organization
console_preferences.sort_by.user contact_info created_at deleted_at description ids ids.email
ids.user_id name password password_updated_at primary_email_address
primary_email_address_validated_at profile_picture profile_picture.embedded
profile_picture.embedded.data profile_picture.embedded.mime_type profile_picture.sizes
require_password_update state state_description temporary_password temporary_password_created_at
temporary_password_expires_at updated_at";
const PUBLIC_USER: [&str; 10] = [
    "ids",
    "created_at",
    "updated_at",
    "deleted_at",
    "contact_info",
    "name",
    "description",
    "state",
    "admin",
    "profile_picture",
];
const PUBLIC_ORG: [&str; 8] = [
    "ids",
    "created_at",
    "updated_at",
    "deleted_at",
    "contact_info",
    "name",
    "administrative_contact",
    "technical_contact",
];
/// `pkg/identityserver/blocklist/builtin.go`, every ID.
const BLOCKLIST: &str =
    "about abuse access account accounts activate activities activity add address adm admin
administration administrator administrators admins ads adult advertising affiliate
affiliates ajax alerts all alpha analysis analytics android anon anonymous api api-key
api-keys apikey apikeys app application applications applicationserver apps archive
archives article as asc asct asset atom auth authentication authorization authorize avatar
backup balancer-manager banner banners beta billing bin blog blogs board book bookmark bot
bots bug business cache cadastro calendar call campaign cancel captcha career careers cart
categories category cgi cgi-bin changelog chat check checking checkout client cliente
clients cluster code codereview comercial comment comments communities community company
compare compras config configuration connect console contact contact-us contest
contribute corp create css dashboard data db default delete demo design designer destroy
dev devel developer developers device devices diagram dictionary dictionary die dir
direct-messages directory dist doc docs documentation domain download downloads ecommerce
edit editor edu education email employment empty end end-device end-devices enterprise
entries entry error errors eval event events everyone exit explore facebook faq favorite
favorites feature features feed feedback feeds file files first flash fleet fleets flog
follow followers following forgot forum forums founder free friend friends ftp gadget
gadgets game games gateway gateway-server gateways gatewayserver get ghost gift gifts gist
github graph group groups gs guest guests help home homepage host hosting hostmaster
hostname howto hpg html http httpd https i iamges icon icons id idea ideas image images imap
img index indice info information inquiry instagram intranet invitations invite ipad
iphone irc is isatap issue issues it item items java javascript job jobs join js json jump
knowledgebase language languages last ldap-status legal license link links linux list
lists log log-in log-out log_in log_out login logout logs m mac mail mail1 mail2 mail3
mail4 mail5 mailer mailing maintenance manager manual map maps marketing master me media
member members message messages messenger microblog microblogs mine mis mob mobile movie
movies mp3 msg msn music musicas mx my mysql name named nan navi navigation net network new
news newsletter nick nickname noc notes noticias notification notifications notify ns ns1
ns10 ns2 ns3 ns4 ns5 ns6 ns7 ns8 ns9 null oauth oauth_clients offer offers official old
online openid operator order orders organization organizations overview owner owners page
pager pages panel password payment perl phone photo photoalbum photos php phpmyadmin
phppgadmin phpredisadmin pic pics ping plan plans plugin plugins policy pop pop3 popular
portal post postfix postmaster posts pr premium press price pricing privacy privacy-policy
profile project projects promo pub public purpose put python query random ranking read
readme recent recruit recruitment register registration release remove replies report
reports repositories repository req request requests reset roc root rss ruby rule sag sale
sales sample samples save school script scripts search secure security self send server
server-info server-status service services session sessions setting settings setup share
shop show sign sign-in sign-up signin signout signup site sitemap sites smartphone smtp
soporte source spec special sql src ssh ssl ssladmin ssladministrator sslwebmaster staff
stage staging start stat state static stats status store stores stories style styleguide
stylesheet stylesheets subdomain subscribe subscriptions suporte support svn swf sys
sysadmin sysadministrator system tablet tablets tag talk task tasks team teams tech telnet
term terms terms-of-service termsofservice test test1 test2 test3 teste testing tests
theme themes thethingsindustries thethingsnetwork thread threads tmp todo tool tools top
topic topics tos tour translations trends tti ttn tutorial tux tv twitter undef unfollow
unsubscribe update upload uploads url usage user username users usuario validation
validations vendas ver version video videos visitor watch weather web webhook webhooks
webmail webmaster website websites welcome widget widgets wiki win workshop ww wws www www1
www2 www3 www4 www5 www6 www7 wwws wwww xfn xml xmpp xpg xxx yaml year yml you yourdomain
yourname yoursite yourusername";

fn rights_all() -> Vec<&'static str> {
    RIGHTS.split_whitespace().collect()
}

/// `ttnpb.AllAdminRights`: every right except those ending in `_KEYS` or `_ALL`.
fn rights_admin() -> Vec<&'static str> {
    rights_all()
        .into_iter()
        .filter(|r| !r.ends_with("_KEYS") && !r.ends_with("_ALL"))
        .collect()
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap())
}

fn id_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, "^[a-z0-9](?:[-]?[a-z0-9]){1,}$")
}

// ---------------------------------------------------------------- public API

/// How to start a fake stack.
pub struct Options {
    /// Where the account app and OAuth server live (`is.oauth.mount`).
    pub account_mount: String,
    /// `is.login-tokens.enabled` (the stack's own default is false).
    pub login_tokens_enabled: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            account_mount: "/account".into(),
            login_tokens_enabled: true,
        }
    }
}

/// A user as the fake stores it (soft-deleted users are not shown).
#[derive(Debug, Clone)]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub email_validated_at: Option<String>,
    pub state: String,
    pub admin: bool,
    pub password: String,
    /// Created without an admin caller.
    pub self_registered: bool,
}

/// An email the stack "sent".
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    /// `validate` or `login_token`.
    pub kind: String,
    pub body: String,
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The raw path, not decoded.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A running fake; the server stops when this is dropped.
pub struct FakeStack {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub url: String,
    state: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStack {
    pub async fn start() -> FakeStack {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> FakeStack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut secret = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let mut inner = Inner {
            base: url.clone(),
            mount: format!("/{}", opts.account_mount.trim_matches('/')),
            console_root: "/console".into(),
            tokens_enabled: opts.login_tokens_enabled,
            approval_required: false,
            token_ttl: Duration::from_secs(3600),
            failing: false,
            delay: Duration::ZERO,
            users: BTreeMap::new(),
            orgs: BTreeMap::new(),
            keys: HashMap::new(),
            tokens: Vec::new(),
            sessions: HashMap::new(),
            access: HashMap::new(),
            codes: HashMap::new(),
            emails: Vec::new(),
            seen: Vec::new(),
            secret,
        };
        inner.put_user("admin", "admin@example.com", true);
        let (_, id, key) = split_token(ADMIN_KEY).unwrap();
        inner.keys.insert(id.into(), ApiKey::new("admin", key));
        let state = Arc::new(Mutex::new(inner));
        let router = Router::new().fallback(handle).with_state(state.clone());
        // Connections are served from a JoinSet the accept task owns, so
        // aborting that task also drops every open (keep-alive) connection.
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let service = TowerToHyperService::new(router.clone());
                conns.spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        FakeStack { url, state, task }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap()
    }

    /// The account app's mount, e.g. `/account`.
    pub fn account_mount(&self) -> String {
        self.st().mount.clone()
    }

    /// A local, approved user with password `Password1-<id>` and a validated
    /// email (as `is-db create-admin-user` would write it: no checks).
    pub fn add_user(&self, id: &str, email: &str, admin: bool) {
        self.st().put_user(id, email, admin);
    }

    pub fn add_org(&self, id: &str) {
        self.st().orgs.insert(id.into(), Utc::now());
    }

    pub fn set_login_tokens_enabled(&self, on: bool) {
        self.st().tokens_enabled = on;
    }

    /// `is.login-tokens.token-ttl` (default 1h) for tokens minted from now on.
    pub fn set_login_token_ttl(&self, ttl: Duration) {
        self.st().token_ttl = ttl;
    }

    /// `is.user-registration.admin-approval.required` (default false).
    pub fn set_admin_approval_required(&self, on: bool) {
        self.st().approval_required = on;
    }

    /// `console.ui.canonical-url`: where the OAuth callback sends the browser
    /// (plus `next`). Default `/console`, i.e. whatever origin the browser
    /// used. An origin alone (`http://host:port`) means `<origin>/console`.
    pub fn set_console_root_url(&self, url: &str) {
        let url = url.trim_end_matches('/');
        let bare_origin = url::Url::parse(url).is_ok_and(|u| u.path() == "/");
        self.st().console_root = if bare_origin {
            format!("{url}/console")
        } else {
            url.into()
        };
    }

    /// Deletes the key: it answers 401 `api_key_not_found` where auth is checked.
    pub fn revoke_key(&self, key: &str) {
        if let Some((_, id, _)) = split_token(key) {
            self.st().keys.remove(id);
        }
    }

    /// A new `RIGHT_ALL` API key owned by `user_id`.
    pub fn add_key(&self, user_id: &str) -> String {
        let (id, key) = (gen_id(), gen_key());
        self.st()
            .keys
            .insert(id.clone(), ApiKey::new(user_id, &key));
        format!("{KEY}.{id}.{key}")
    }

    /// Every request answers 503 `pkg/util/store:database_unavailable`.
    pub fn set_failing(&self, on: bool) {
        self.st().failing = on;
    }

    /// Every answer waits `d` first.
    pub fn set_delay(&self, d: Duration) {
        self.st().delay = d;
    }

    /// Soft delete: GET answers 404, the ID stays taken.
    pub fn delete_user(&self, id: &str) {
        if let Some(u) = self.st().users.get_mut(id) {
            u.deleted_at = Some(Utc::now());
        }
    }

    /// Logs in with the user's password at `<mount>/api/auth/login` and
    /// returns the `_session` cookie value.
    pub async fn password_session(&self, user_id: &str) -> String {
        let password = self.user(user_id).expect("user exists").password;
        let url = format!("{}{}/api/auth/login", self.url, self.account_mount());
        let res = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(url)
            .json(&json!({"user_id": user_id, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "password login of {user_id}");
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.strip_prefix("_session="))
            .map(|v| v.split(';').next().unwrap().to_string())
            .next()
            .expect("a _session cookie")
    }

    pub fn user(&self, id: &str) -> Option<UserView> {
        self.st().users.get(id).filter(|u| u.live()).map(User::view)
    }

    pub fn users(&self) -> Vec<UserView> {
        self.st()
            .users
            .values()
            .filter(|u| u.live())
            .map(User::view)
            .collect()
    }

    pub fn emails(&self) -> Vec<Email> {
        self.st().emails.clone()
    }

    /// Unexpired, unused login tokens of the user.
    pub fn active_tokens(&self, user_id: &str) -> usize {
        let now = Utc::now();
        let st = self.st();
        st.tokens
            .iter()
            .filter(|t| t.user == user_id && !t.used && t.expires_at > now)
            .count()
    }

    /// Account sessions of the user that were not deleted.
    pub fn live_sessions(&self, user_id: &str) -> usize {
        self.st()
            .sessions
            .values()
            .filter(|s| s.user == user_id)
            .count()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.st().seen.clone()
    }
}

// ---------------------------------------------------------------- state

struct User {
    id: String,
    name: String,
    description: String,
    attributes: BTreeMap<String, String>,
    email: String,
    validated_at: Option<DateTime<Utc>>,
    password: String,
    require_password_update: bool,
    state: i64,
    state_description: String,
    admin: bool,
    self_registered: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    password_updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl User {
    fn live(&self) -> bool {
        self.deleted_at.is_none()
    }

    fn view(&self) -> UserView {
        UserView {
            id: self.id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            email_validated_at: self.validated_at.map(ts),
            state: STATES[self.state as usize].into(),
            admin: self.admin,
            password: self.password.clone(),
            self_registered: self.self_registered,
        }
    }

    /// The user as `userToPB(model, fieldMask...)` gives it: ids and
    /// timestamps always, the masked fields (all with `None`), zero values
    /// left out as jsonpb does.
    fn json(&self, mask: Option<&BTreeSet<String>>) -> Value {
        let want = |f: &str| mask.is_none_or(|m| m.contains(f));
        let mut m = Map::new();
        m.insert("ids".into(), json!({"user_id": self.id}));
        m.insert("created_at".into(), ts(self.created_at).into());
        m.insert("updated_at".into(), ts(self.updated_at).into());
        if let Some(d) = self.deleted_at {
            m.insert("deleted_at".into(), ts(d).into());
        }
        let mut put = |k: &str, v: Value, zero: bool| {
            if want(k) && !zero {
                m.insert(k.into(), v);
            }
        };
        put("name", self.name.clone().into(), self.name.is_empty());
        put(
            "description",
            self.description.clone().into(),
            self.description.is_empty(),
        );
        put(
            "attributes",
            json!(self.attributes),
            self.attributes.is_empty(),
        );
        put(
            "primary_email_address",
            self.email.clone().into(),
            self.email.is_empty(),
        );
        let validated = self.validated_at.map(ts);
        put(
            "primary_email_address_validated_at",
            json!(validated),
            validated.is_none(),
        );
        put(
            "password_updated_at",
            ts(self.password_updated_at).into(),
            false,
        );
        put(
            "require_password_update",
            true.into(),
            !self.require_password_update,
        );
        put("state", STATES[self.state as usize].into(), self.state == 0);
        put(
            "state_description",
            self.state_description.clone().into(),
            self.state_description.is_empty(),
        );
        put("admin", true.into(), !self.admin);
        put("console_preferences", json!({}), false);
        Value::Object(m)
    }
}

struct ApiKey {
    user: String,
    secret: String,
    created_at: DateTime<Utc>,
}

impl ApiKey {
    fn new(user: &str, secret: &str) -> ApiKey {
        ApiKey {
            user: user.into(),
            secret: secret.into(),
            created_at: Utc::now(),
        }
    }
}

struct LoginToken {
    user: String,
    token: String,
    expires_at: DateTime<Utc>,
    used: bool,
}

struct Session {
    user: String,
    secret: String,
    created_at: DateTime<Utc>,
}

struct AccessToken {
    user: String,
    secret: String,
    session_id: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

struct Code {
    user: String,
    session_id: String,
    expires_at: DateTime<Utc>,
}

struct Inner {
    base: String,
    mount: String,
    console_root: String,
    tokens_enabled: bool,
    approval_required: bool,
    token_ttl: Duration,
    failing: bool,
    delay: Duration,
    users: BTreeMap<String, User>,
    orgs: BTreeMap<String, DateTime<Utc>>,
    keys: HashMap<String, ApiKey>,
    tokens: Vec<LoginToken>,
    sessions: HashMap<String, Session>,
    access: HashMap<String, AccessToken>,
    codes: HashMap<String, Code>,
    emails: Vec<Email>,
    seen: Vec<Seen>,
    secret: Vec<u8>,
}

impl Inner {
    fn put_user(&mut self, id: &str, email: &str, admin: bool) {
        let now = Utc::now();
        self.users.insert(
            id.into(),
            User {
                id: id.into(),
                name: String::new(),
                description: String::new(),
                attributes: BTreeMap::new(),
                email: email.into(),
                validated_at: Some(now),
                password: format!("Password1-{id}"),
                require_password_update: false,
                state: 1,
                state_description: String::new(),
                admin,
                self_registered: false,
                created_at: now,
                updated_at: now,
                password_updated_at: now,
                deleted_at: None,
            },
        );
    }

    fn live_user(&self, id: &str) -> Option<&User> {
        self.users.get(id).filter(|u| u.live())
    }

    fn send(&mut self, to: &str, kind: &str, body: String) {
        self.emails.push(Email {
            to: to.into(),
            kind: kind.into(),
            body,
        });
    }

    fn send_validation(&mut self, user: &str) {
        let Some(email) = self.live_user(user).map(|u| u.email.clone()) else {
            return;
        };
        let (reference, token) = (gen_id(), gen_key());
        let body = format!(
            "Hello,\n\nPlease confirm your email address for {SITE}.\n\nYour email address \
             will be linked to user \"{user}\".\n\nYou can go to {}{}/validate?reference=\
             {reference}&token={token} to confirm your email address.\nAlternatively, you can \
             use the reference \"{reference}\" and confirmation token \"{token}\" directly.\n\n\
             The confirmation token expires in 48 hours.",
            self.base, self.mount
        );
        self.send(&email, "validate", body);
    }

    /// A cookie value: the payload and a MAC bound to the cookie name.
    fn seal(&self, name: &str, payload: &Value) -> String {
        self.sign(name, &B64.encode(payload.to_string()))
    }

    fn sign(&self, name: &str, p: &str) -> String {
        let mac = Sha256::new()
            .chain_update(&self.secret)
            .chain_update(name)
            .chain_update(p)
            .finalize();
        format!("{p}.{}", B64.encode(mac))
    }

    fn unseal(&self, name: &str, value: &str) -> Option<Value> {
        let (p, _) = value.split_once('.')?;
        if value != self.sign(name, p) {
            return None;
        }
        serde_json::from_slice(&B64.decode(p).ok()?).ok()
    }

    /// The `_session` cookie decoded: (user, session ID, session secret).
    fn cookie_session(&self, h: &HeaderMap) -> Option<(String, String, String)> {
        let v = self.unseal("_session", &cookie(h, "_session")?)?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some((s("u")?, s("s")?, s("k")?))
    }

    /// `session.Get`: the browser's account session (the secret is not checked).
    fn browser_session(&self, h: &HeaderMap) -> Result<(String, String), (TErr, bool)> {
        let Some((user, sid, _)) = self.cookie_session(h) else {
            let bad = cookie(h, "_session").is_some_and(|c| c != TOMBSTONE);
            return Err((terr("pkg/account/session:auth_cookie"), bad));
        };
        match self.sessions.get(&sid) {
            Some(s) if s.user == user => Ok((user, sid)),
            _ => Err((session_not_found(&user, &sid), true)),
        }
    }

    fn new_session(&mut self, user: &str) -> String {
        let (sid, secret) = (uuid(), gen_key());
        self.sessions.insert(
            sid.clone(),
            Session {
                user: user.into(),
                secret: secret.clone(),
                created_at: Utc::now(),
            },
        );
        self.seal("_session", &json!({"u": user, "s": sid, "k": secret}))
    }

    /// The user and access token ID behind the browser's `_console_auth`.
    fn console_user(&self, h: &HeaderMap) -> Option<(String, String)> {
        let v = self.unseal("_console_auth", &cookie(h, "_console_auth")?)?;
        let (_, id, secret) = split_token(v.get("t")?.as_str()?)?;
        let at = self.access.get(id)?;
        (at.secret == secret && at.expires_at > Utc::now() && self.live_user(&at.user).is_some())
            .then(|| (at.user.clone(), id.to_string()))
    }
}

// ---------------------------------------------------------------- errors

/// Every error the fake answers, as the stack defines it: `namespace:name`
/// (the namespace is the defining Go package), gRPC code, message format.
#[rustfmt::skip]
const ERRORS: &[(&str, u32, &str)] = &[
    ("pkg/account/session:auth_cookie", 16, "get auth cookie"),
    ("pkg/account/session:no_user_id_password_match", 3, "incorrect password or user ID"),
    ("pkg/account:missing_password", 3, "missing password"),
    ("pkg/account:missing_token", 3, "missing token"),
    ("pkg/account:missing_user_id", 3, "missing user_id"),
    ("pkg/account:not_authenticated", 16, "not authenticated"),
    ("pkg/account:parse", 10, "request body parsing"),
    ("pkg/auth/rights:insufficient_user_rights", 7, "insufficient rights for user `{uid}`"),
    ("pkg/auth/rights:no_organization_rights", 7, "no rights for organization `{uid}`"),
    ("pkg/auth/rights:no_user_rights", 7, "no rights for user `{uid}`"),
    ("pkg/auth:token", 3, "invalid token"),
    ("pkg/errors:validation", 3, "invalid `{field}`: {reason}"),
    ("pkg/identityserver/blocklist:forbidden_id", 3, "the ID `{id}` can not be registered"),
    ("pkg/identityserver/store:access_token_not_found", 5, "access token with id `{access_token_id}` not found"),
    ("pkg/identityserver/store:api_key_not_found", 5, "api key with id `{api_key_id}` not found"),
    ("pkg/identityserver/store:entity_not_found", 5, "{entity_type} entity with id `{entity_id}` not found"),
    ("pkg/identityserver/store:login_token_already_used", 9, "login token already used"),
    ("pkg/identityserver/store:login_token_expired", 9, "login token expired"),
    ("pkg/identityserver/store:login_token_not_found", 5, "login token not found"),
    ("pkg/identityserver/store:organization_not_found", 5, "organization with id `{organization_id}` not found"),
    ("pkg/identityserver/store:user_not_found", 5, "user with id `{user_id}` not found"),
    ("pkg/identityserver/store:user_session_not_found", 5, "user session with id `{session_id}` not found"),
    ("pkg/identityserver:api_key_not_found", 16, "API key not found"),
    ("pkg/identityserver:invalid_authorization", 16, "invalid authorization"),
    ("pkg/identityserver:login_tokens_disabled", 9, "login tokens are disabled"),
    ("pkg/identityserver:login_tokens_still_valid", 6, "previously created login token still valid"),
    ("pkg/identityserver:password_contains_user_id", 3, "must not contain user ID"),
    ("pkg/identityserver:password_strength_digits", 3, "need at least `{n}` digit(s)"),
    ("pkg/identityserver:password_strength_max_length", 3, "need at most `{n}` characters"),
    ("pkg/identityserver:password_strength_min_length", 3, "need at least `{n}` characters"),
    ("pkg/identityserver:password_strength_uppercase", 3, "need at least `{n}` uppercase letter(s)"),
    ("pkg/identityserver:token_expired", 16, "token expired"),
    ("pkg/identityserver:token_not_found", 16, "token not found"),
    ("pkg/identityserver:unauthenticated", 16, "unauthenticated"),
    ("pkg/identityserver:unsupported_authorization", 16, "unsupported authorization method"),
    ("pkg/identityserver:update_admin_field", 7, "only admins can update the `{field}` field"),
    ("pkg/identityserver:user_rejected", 7, "user account was rejected"),
    ("pkg/identityserver:user_requested", 7, "user account approval is pending"),
    ("pkg/identityserver:user_suspended", 7, "user account was suspended"),
    ("pkg/oauth:invalid_grant", 7, "invalid, expired or revoked authorization code"),
    ("pkg/oauth:invalid_logout_redirect_uri", 3, "the redirect URI did not match the one(s) defined in the client"),
    ("pkg/oauth:invalid_redirect_uri", 7, "invalid redirect URI"),
    ("pkg/oauth:missing_param_access_token_id", 7, "access token ID was not provided"),
    ("pkg/oauth:unauthorized_client", 7, "client is not authorized to request a token using this method"),
    ("pkg/rpcmiddleware/validator:field_mask_paths", 3, "forbidden path(s) in field mask"),
    ("pkg/rpcserver:rpc_recovered", 13, "Internal Server Error"),
    ("pkg/util/store:already_exists", 6, "already exists"),
    ("pkg/util/store:database_unavailable", 14, "database unavailable"),
    ("pkg/validate:email", 3, "`{email}` is not a valid email."),
    ("pkg/web/oauthclient:exchange", 7, "token exchange refused"),
    ("pkg/web/oauthclient:invalid_state", 7, "invalid state parameter"),
    ("pkg/web/oauthclient:no_auth_cookie", 16, "no auth cookie"),
    ("pkg/web/oauthclient:no_code", 7, "no code parameter present in request"),
    ("pkg/web/oauthclient:no_state_param", 7, "no state parameter present in request"),
    ("pkg/web/oauthclient:refresh", 7, "token refresh refused"),
    ("pkg/web/oauthclient:refused", 7, "refused by OAuth server"),
    ("pkg/webhandlers:route_not_found", 5, "route `{route}` not found"),
    ("pkg/webmiddleware:invalid_csrf_token", 7, "invalid csrf token"),
];

/// A TTS error: a definition with public attributes and an optional TTS
/// cause; each one gets its own correlation ID.
#[derive(Clone, Debug)]
struct TErr {
    ns: &'static str,
    name: &'static str,
    format: &'static str,
    code: u32,
    attrs: Vec<(&'static str, Value)>,
    cause: Option<Box<TErr>>,
    correlation: String,
}

/// A new error of the definition `namespace:name` (see [`ERRORS`]).
fn terr(full: &'static str) -> TErr {
    let &(_, code, format) = ERRORS.iter().find(|d| d.0 == full).expect("defined error");
    let (ns, name) = full.split_once(':').unwrap();
    TErr {
        ns,
        name,
        format,
        code,
        attrs: Vec::new(),
        cause: None,
        correlation: hex(&rand_bytes(16)),
    }
}

impl TErr {
    fn with(mut self, k: &'static str, v: impl Into<Value>) -> TErr {
        self.attrs.push((k, v.into()));
        self
    }

    fn because(mut self, cause: TErr) -> TErr {
        self.cause = Some(Box::new(cause));
        self
    }

    fn message(&self) -> String {
        let mut s = self.format.to_string();
        for (k, v) in &self.attrs {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            s = s.replace(&format!("{{{k}}}"), &v);
        }
        s
    }

    fn details(&self) -> Value {
        let mut d = json!({
            "namespace": self.ns, "name": self.name, "message_format": self.format,
            "correlation_id": self.correlation, "code": self.code,
        });
        if !self.attrs.is_empty() {
            let attrs: Map<String, Value> = self
                .attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            d["attributes"] = Value::Object(attrs);
        }
        if let Some(c) = &self.cause {
            d["cause"] = c.details();
        }
        d
    }

    /// The gRPC status as JSON: what both `/api/v3` and the web handlers send.
    fn body(&self) -> Value {
        let mut d = self.details();
        d["@type"] = "type.googleapis.com/ttn.lorawan.v3.ErrorDetails".into();
        json!({
            "code": self.code,
            "message": format!("error:{}:{} ({})", self.ns, self.name, self.message()),
            "details": [d],
        })
    }
}

/// `pkg/errors/http.go`: gRPC code to HTTP status.
fn http_status(code: u32) -> u16 {
    [
        200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401,
    ]
    .get(code as usize)
    .copied()
    .unwrap_or(500)
}

/// A validation error as `errors.From` builds it from a generated validator's.
fn verr(field: impl Into<String>, reason: &str, validator: &str) -> TErr {
    terr("pkg/errors:validation")
        .with("field", field.into())
        .with("name", validator)
        .with("reason", reason)
}

fn user_not_found(id: &str) -> TErr {
    terr("pkg/identityserver/store:user_not_found").with("user_id", id)
}

fn session_not_found(user: &str, sid: &str) -> TErr {
    terr("pkg/identityserver/store:user_session_not_found")
        .with("session_id", sid)
        .with("user_id", user)
}

fn route_not_found(path: &str) -> TErr {
    terr("pkg/webhandlers:route_not_found").with("route", path)
}

// ---------------------------------------------------------------- responses

const TOMBSTONE: &str = "<deleted>";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn respond(status: u16, ctype: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(body.into())
        .unwrap()
}

fn ok_json(v: &Value) -> Response {
    respond(200, "application/json", v.to_string())
}

/// An error from the gRPC gateway (`runtime.DefaultHTTPErrorHandler`).
fn api_err(err: &TErr) -> Response {
    let mut r = respond(
        http_status(err.code),
        "application/json",
        err.body().to_string(),
    );
    if err.code == 16 {
        let v = HeaderValue::from_str(&err.body()["message"].as_str().unwrap().replace('\n', " "));
        r.headers_mut().insert("www-authenticate", v.unwrap());
    }
    r
}

/// A gateway-level error that never reached the server: no details.
fn gw_err(code: u32, status: u16, message: &str) -> Response {
    respond(
        status,
        "application/json",
        json!({"code": code, "message": message}).to_string(),
    )
}

/// `webhandlers.Error`: JSON indented with tabs, or an HTML page when the
/// browser prefers it.
fn web_err(cx: &Ctx, err: &TErr) -> Response {
    if prefers_html(cx.headers) {
        let html = format!(
            "<!doctype html><html><head><title>Error - {SITE}</title></head><body>\
             <h1>{}</h1><p>{}</p></body></html>",
            esc(err.name),
            esc(&err.message())
        );
        return respond(http_status(err.code), "text/html", html);
    }
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&err.body(), &mut ser).unwrap();
    out.push(b'\n');
    respond(http_status(err.code), "application/json", out)
}

fn prefers_html(h: &HeaderMap) -> bool {
    let accept = header(h, "accept").unwrap_or("");
    let q = |offer: &str| {
        let mut best = 0.0f32;
        for spec in accept.split(',') {
            let mut parts = spec.split(';');
            let t = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=")?.parse().ok())
                .unwrap_or(1.0);
            let (ty, _) = offer.split_once('/').unwrap();
            if t == offer || t == format!("{ty}/*") || t == "*/*" {
                best = best.max(q);
            }
        }
        best
    };
    q("text/html") > q("application/json")
}

/// `http.Redirect`: relative locations get their path cleaned.
fn redirect(cx: &Ctx, status: u16, location: &str) -> Response {
    let mut loc = location.to_string();
    if loc.starts_with('/') && !loc.starts_with("//") {
        let (p, q) = loc
            .split_once('?')
            .map_or((loc.as_str(), None), |(p, q)| (p, Some(q)));
        let cleaned = clean_path(p);
        loc = q.map_or(cleaned.clone(), |q| format!("{cleaned}?{q}"));
    }
    let text = if status == 308 {
        "Permanent Redirect"
    } else {
        "Found"
    };
    let body = if *cx.method == Method::GET {
        format!("<a href=\"{}\">{text}</a>.\n\n", esc(&loc))
    } else {
        String::new()
    };
    let mut r = respond(status, "text/html; charset=utf-8", body);
    r.headers_mut()
        .insert("location", HeaderValue::from_str(&loc).unwrap());
    r
}

fn add_cookie(r: &mut Response, c: String) {
    r.headers_mut()
        .append("set-cookie", HeaderValue::from_str(&c).unwrap());
}

/// `pkg/web/cookie`: `Secure` on https (as seen through trusted proxy
/// headers) or on a `localhost` host.
fn set_cookie(cx: &Ctx, name: &str, value: &str, path: &str, max_age: Option<u32>) -> String {
    let mut c = format!("{name}={value}; Path={path}");
    if value == TOMBSTONE {
        c.push_str("; Expires=Thu, 01 Jan 1970 00:00:01 GMT");
    }
    if let Some(m) = max_age {
        c.push_str(&format!("; Max-Age={m}"));
    }
    c.push_str("; HttpOnly");
    let host = header(cx.headers, "x-forwarded-host").or(header(cx.headers, "host"));
    let local = host.is_some_and(|h| h == "localhost" || h.ends_with(".localhost"));
    if header(cx.headers, "x-forwarded-proto") == Some("https") || local {
        c.push_str("; Secure");
    }
    c + "; SameSite=Lax"
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

// ---------------------------------------------------------------- helpers

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn rand_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base32(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buf, mut bits) = (String::new(), 0u32, 0);
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// `auth.GenerateID`: 24 random bytes, base32 without padding (39 chars).
fn gen_id() -> String {
    base32(&rand_bytes(24))
}

/// `auth.GenerateKey`: 32 random bytes, base32 without padding (52 chars).
fn gen_key() -> String {
    base32(&rand_bytes(32))
}

fn uuid() -> String {
    let h = hex(&rand_bytes(16));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `auth.SplitToken`: `<type>.<id>.<key>` with a known type.
fn split_token(t: &str) -> Option<(&str, &str, &str)> {
    let mut p = t.split('.');
    let (a, b, c) = (p.next()?, p.next()?, p.next()?);
    (p.next().is_none() && [KEY, ACC, SSN, AUT, REF].contains(&a)).then_some((a, b, c))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
}

/// Go's `url.QueryEscape`.
fn qesc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.Values.Encode`: sorted by key.
fn encode_query(pairs: &[(String, String)]) -> String {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", qesc(k), qesc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// gorilla/mux `cleanPath`: `path.Clean`, keeping a trailing slash.
fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut c = format!("/{}", out.join("/"));
    if p.ends_with('/') && c != "/" {
        c.push('/');
    }
    c
}

/// Go's `URL.EscapedPath` for a path without a valid raw form.
fn escape_path(p: &str) -> String {
    let mut out = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The jsonplugin time layout `2006-01-02T15:04:05.999999999Z`.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let layout = "2006-01-02T15:04:05.999999999Z";
    let bad = || format!("invalid time: parsing time \"{s}\" as \"{layout}\"");
    if !re(&R, r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$").is_match(s) {
        return Err(bad());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad())
}

// ---------------------------------------------------------------- server

struct Ctx<'a> {
    method: &'a Method,
    path: &'a str,
    query: Vec<(String, String)>,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl Ctx<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// Go's `r.ParseForm`: an urlencoded body's values, then the query's.
    fn form(&self) -> Vec<(String, String)> {
        let ctype = header(self.headers, "content-type").unwrap_or("");
        let mut form = Vec::new();
        let is_form =
            ctype.split(';').next().unwrap().trim() == "application/x-www-form-urlencoded";
        if is_form && [Method::POST, Method::PUT, Method::PATCH].contains(self.method) {
            form = form_urlencoded::parse(self.body).into_owned().collect();
        }
        form.extend(self.query.iter().cloned());
        form
    }

    fn unsafe_method(&self) -> bool {
        ![Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(self.method)
    }
}

async fn handle(State(state): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let (delay, failing) = {
        let mut st = state.lock().unwrap();
        st.seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect(),
            body: String::from_utf8_lossy(&body).into(),
        });
        (st.delay, st.failing)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if failing {
        return api_err(&terr("pkg/util/store:database_unavailable"));
    }
    let raw = parts.uri.path();
    let b = raw.as_bytes();
    let hexdig = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    if (0..b.len()).any(|i| b[i] == b'%' && !(hexdig(i + 1) && hexdig(i + 2))) {
        return respond(400, "text/plain; charset=utf-8", "400 Bad Request");
    }
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .to_string();
    let query = parts.uri.query().map(parse_query).unwrap_or_default();
    let cx = Ctx {
        method: &parts.method,
        path: &decoded,
        query,
        headers: &parts.headers,
        body: &body,
    };
    let cleaned = clean_path(&decoded);
    if cleaned != decoded {
        let mut loc = escape_path(&cleaned);
        if let Some(q) = parts.uri.query() {
            loc = format!("{loc}?{q}");
        }
        let mut r = respond(301, "text/plain", "");
        r.headers_mut()
            .insert("location", HeaderValue::from_str(&loc).unwrap());
        return r;
    }
    let mut st = state.lock().unwrap();
    route(&mut st, &cx)
}

fn route(st: &mut Inner, cx: &Ctx) -> Response {
    let p = cx.path;
    let mount = st.mount.clone();
    if p == "/healthz" {
        respond(200, "text/plain", "ok")
    } else if let Some(rest) = p.strip_prefix("/api/v3/") {
        api(st, cx, rest)
    } else if p == mount || p == "/console" {
        redirect(cx, 308, &format!("{p}/"))
    } else if let Some(rest) = p
        .strip_prefix(mount.as_str())
        .filter(|r| r.starts_with('/'))
    {
        account(st, cx, rest)
    } else if let Some(rest) = p.strip_prefix("/console").filter(|r| r.starts_with('/')) {
        console(st, cx, rest)
    } else {
        web_err(cx, &route_not_found(p))
    }
}

/// gorilla/csrf as `pkg/webmiddleware/csrf.go` wraps it: skipped for API key
/// and access token callers; sets `_csrf` when missing; an unsafe request
/// without the token passes unless it carries a (session) Bearer token.
fn csrf(cx: &Ctx, authz: Option<&str>) -> Result<Option<(String, Option<String>)>, TErr> {
    let bearer = authz.and_then(|a| a.strip_prefix("Bearer "));
    let typ = bearer.and_then(split_token).map(|(t, _, _)| t);
    if matches!(typ, Some(KEY) | Some(ACC)) {
        return Ok(None);
    }
    let existing = cookie(cx.headers, "_csrf").filter(|c| c.len() == 43);
    if cx.unsafe_method()
        && (existing.is_none() || header(cx.headers, "x-csrf-token") != existing.as_deref())
        && typ.is_some()
    {
        return Err(terr("pkg/webmiddleware:invalid_csrf_token"));
    }
    Ok(Some(match existing {
        Some(t) => (t, None),
        None => {
            let t = B64.encode(rand_bytes(32));
            let c = set_cookie(cx, "_csrf", &t, "/", Some(43200));
            (t, Some(c))
        }
    }))
}

// ---------------------------------------------------------------- auth

#[derive(Clone, Default)]
struct Auth {
    /// The access method as `AuthInfoResponse` names it, with its JSON.
    access: Option<(&'static str, Value)>,
    user: Option<String>,
    rights: Vec<&'static str>,
    universal: Option<Vec<&'static str>>,
    is_admin: bool,
}

/// `IdentityServer.authInfo` for an `Authorization` value.
fn auth_info(st: &Inner, authz: Option<&str>) -> Result<Auth, TErr> {
    let Some(authz) = authz.filter(|a| !a.is_empty()) else {
        return Ok(Auth::default());
    };
    let (kind, value) = authz.split_once(' ').unwrap_or((authz, ""));
    let unsupported = || terr("pkg/identityserver:unsupported_authorization");
    if !kind.eq_ignore_ascii_case("bearer") {
        return Err(unsupported());
    }
    let (typ, id, secret) = split_token(value).ok_or(terr("pkg/auth:token"))?;
    let invalid = || terr("pkg/identityserver:invalid_authorization");
    let token_not_found = || terr("pkg/identityserver:token_not_found");
    let all = rights_all();
    let (user, access) = match typ {
        KEY => {
            let not_found = || terr("pkg/identityserver:api_key_not_found");
            let k = st.keys.get(id).ok_or_else(|| {
                not_found().because(
                    terr("pkg/identityserver/store:api_key_not_found").with("api_key_id", id),
                )
            })?;
            if k.secret != secret {
                return Err(invalid());
            }
            st.live_user(&k.user)
                .ok_or_else(|| not_found().because(user_not_found(&k.user)))?;
            let key = json!({"id": id, "rights": all, "created_at": ts(k.created_at),
                "updated_at": ts(k.created_at)});
            let ids = json!({"user_ids": {"user_id": k.user}});
            (
                k.user.clone(),
                ("api_key", json!({"api_key": key, "entity_ids": ids})),
            )
        }
        ACC => {
            let at = st.access.get(id).ok_or_else(|| {
                token_not_found().because(
                    terr("pkg/identityserver/store:access_token_not_found")
                        .with("access_token_id", id),
                )
            })?;
            if at.secret != secret {
                return Err(invalid());
            }
            if at.expires_at < Utc::now() {
                return Err(terr("pkg/identityserver:token_expired"));
            }
            st.live_user(&at.user)
                .ok_or_else(|| token_not_found().because(user_not_found(&at.user)))?;
            let v = json!({"user_ids": {"user_id": at.user}, "user_session_id": at.session_id,
                "client_ids": {"client_id": "console"}, "id": id, "rights": all,
                "created_at": ts(at.created_at), "expires_at": ts(at.expires_at)});
            (at.user.clone(), ("oauth_access_token", v))
        }
        SSN => {
            let s = st.sessions.get(id).ok_or_else(|| {
                token_not_found().because(
                    terr("pkg/identityserver/store:user_session_not_found").with("session_id", id),
                )
            })?;
            if s.secret != secret {
                return Err(invalid());
            }
            st.live_user(&s.user)
                .ok_or_else(|| token_not_found().because(user_not_found(&s.user)))?;
            let v = json!({"user_ids": {"user_id": s.user}, "session_id": id,
                "created_at": ts(s.created_at), "updated_at": ts(s.created_at)});
            (s.user.clone(), ("user_session", v))
        }
        _ => return Err(unsupported()),
    };
    let u = st.live_user(&user).unwrap();
    let mut a = Auth {
        access: Some(access),
        user: Some(user.clone()),
        rights: all,
        universal: None,
        is_admin: false,
    };
    let restrict: Option<&[&'static str]> = match u.state {
        0 => Some(&[
            "RIGHT_USER_INFO",
            "RIGHT_USER_SETTINGS_BASIC",
            "RIGHT_USER_DELETE",
        ]),
        2 => Some(&["RIGHT_USER_INFO", "RIGHT_USER_DELETE"]),
        4 => Some(&["RIGHT_USER_INFO"]),
        _ => None,
    };
    if let Some(keep) = restrict {
        a.rights.retain(|r| keep.contains(r));
        a.universal = Some(Vec::new());
        if let Some((_, v)) = a.access.as_mut() {
            if let Some(slot) = v.pointer_mut("/api_key/rights") {
                *slot = json!(a.rights);
            }
            if let Some(slot) = v.get_mut("rights") {
                *slot = json!(a.rights);
            }
        }
    } else if u.state == 1 && u.admin {
        a.is_admin = true;
        a.universal = Some(rights_admin());
    }
    Ok(a)
}

fn auth_json(a: &Auth) -> Value {
    let mut m = Map::new();
    if let Some((k, v)) = &a.access {
        m.insert(k.to_string(), v.clone());
    }
    match &a.universal {
        Some(u) if u.is_empty() => {
            m.insert("universal_rights".into(), json!({}));
        }
        Some(u) => {
            m.insert("universal_rights".into(), json!({"rights": u}));
        }
        None => {}
    }
    if a.is_admin {
        m.insert("is_admin".into(), true.into());
    }
    Value::Object(m)
}

/// `rights.RequireUser` over `IdentityServer.UserRights`.
fn require_user(st: &Inner, a: &Result<Auth, TErr>, target: &str, right: &str) -> Result<(), TErr> {
    let a = a.clone()?;
    let mut rights: Vec<&str> = Vec::new();
    if a.user.as_deref() == Some(target) {
        rights.extend(&a.rights);
    }
    rights.extend(a.universal.iter().flatten());
    if st.live_user(target).is_none() {
        if a.is_admin {
            return Err(user_not_found(target));
        }
        rights.clear();
    }
    if rights.is_empty() {
        return Err(terr("pkg/auth/rights:no_user_rights").with("uid", target));
    }
    if !rights.contains(&right) {
        return Err(terr("pkg/auth/rights:insufficient_user_rights")
            .with("uid", target)
            .with("missing", json!([right])));
    }
    Ok(())
}

/// `IdentityServer.RequireAuthenticated`.
fn require_authenticated(st: &Inner, a: &Result<Auth, TErr>) -> Result<(), TErr> {
    let a = a.clone()?;
    if let Some(u) = a.user.as_deref().and_then(|u| st.live_user(u)) {
        let name = match u.state {
            0 => "pkg/identityserver:user_requested",
            2 => "pkg/identityserver:user_rejected",
            4 => "pkg/identityserver:user_suspended",
            _ => "",
        };
        if !name.is_empty() {
            let err = terr(name);
            return Err(match u.state_description.as_str() {
                "" => err,
                d => err.with("description", d.to_string()),
            });
        }
    }
    if a.access.is_some() || a.universal.is_some_and(|u| !u.is_empty()) {
        return Ok(());
    }
    Err(terr("pkg/identityserver:unauthenticated"))
}

// ---------------------------------------------------------------- /api/v3

fn api(st: &mut Inner, cx: &Ctx, rest: &str) -> Response {
    let mut authz = header(cx.headers, "authorization")
        .filter(|a| !a.is_empty())
        .map(String::from);
    if authz.is_none() {
        if let Some((_, sid, secret)) = st.cookie_session(cx.headers) {
            authz = Some(format!("Bearer {SSN}.{sid}.{secret}"));
        }
    }
    let set = match csrf(cx, authz.as_deref()) {
        Ok(c) => c.and_then(|(_, set)| set),
        Err(err) => return web_err(cx, &err),
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let a = auth_info(st, authz.as_deref());
    let m = cx.method.clone();
    let mut r = match (m.as_str(), segs.as_slice()) {
        ("GET", ["auth_info"]) => a.map_or_else(|err| api_err(&err), |a| ok_json(&auth_json(&a))),
        ("GET", ["users", id]) => get_user(st, cx, &a, id),
        ("PUT", ["users", id]) => update_user(st, cx, &a, id),
        ("POST", ["users"]) => create_user(st, cx, &a),
        ("POST", ["users", id, "login-tokens"]) => create_login_token(st, cx, &a, id),
        ("GET", ["organizations", id]) => get_org(st, cx, &a, id),
        ("GET", ["applications"]) => list_applications(st, &a),
        (_, ["auth_info"] | ["users"] | ["users", _] | ["users", _, "login-tokens"])
        | (_, ["organizations", _] | ["applications"]) => gw_err(12, 405, "Method Not Allowed"),
        _ => gw_err(5, 404, "Not Found"),
    };
    if let Some(c) = set {
        add_cookie(&mut r, c);
    }
    r
}

fn mask_from_query(cx: &Ctx) -> Vec<String> {
    let mut paths = Vec::new();
    for (k, v) in &cx.query {
        match k.as_str() {
            "field_mask" => paths.extend(v.split(',').map(String::from)),
            "field_mask.paths" => paths.push(v.clone()),
            _ => {}
        }
    }
    paths.retain(|p| !p.is_empty());
    paths
}

/// The validator middleware's field mask check.
fn forbidden_paths(paths: &[String], omit: &[&str]) -> Result<(), TErr> {
    let bad: Vec<&String> = paths
        .iter()
        .filter(|p| omit.contains(&p.as_str()) || !USER_PATHS.split_whitespace().any(|a| a == *p))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(terr("pkg/rpcmiddleware/validator:field_mask_paths").with("forbidden_paths", json!(bad)))
}

fn id_reason(id: &str) -> Option<&'static str> {
    if id.chars().count() > 36 {
        Some("value length must be at most 36 runes")
    } else if !id_regex().is_match(id) {
        Some("value does not match regex pattern \"^[a-z0-9](?:[-]?[a-z0-9]){1,}$\"")
    } else {
        None
    }
}

fn check_ids(id: &str, outer: &str) -> Result<(), TErr> {
    match id_reason(id) {
        None => Ok(()),
        Some(reason) => Err(verr("user_ids", EMBEDDED, outer).because(verr(
            "user_id",
            reason,
            "UserIdentifiersValidationError",
        ))),
    }
}

fn get_user(st: &Inner, cx: &Ctx, a: &Result<Auth, TErr>, id: &str) -> Response {
    let paths = mask_from_query(cx);
    let run = || -> Result<Value, TErr> {
        forbidden_paths(&paths, &["password", "temporary_password"])?;
        check_ids(id, "GetUserRequestValidationError")?;
        let mut mask: BTreeSet<String> = paths.iter().cloned().collect();
        mask.extend(["ids", "created_at", "updated_at"].map(String::from));
        let mut public = false;
        if let Err(err) = require_user(st, a, id, "RIGHT_USER_INFO") {
            require_authenticated(st, a)?;
            if !mask.iter().all(|p| PUBLIC_USER.contains(&p.as_str())) {
                return Err(err);
            }
            public = true;
        }
        let u = st.live_user(id).ok_or_else(|| user_not_found(id))?;
        if mask.contains("contact_info") {
            mask.extend(
                [
                    "primary_email_address",
                    "primary_email_address_validated_at",
                ]
                .map(String::from),
            );
        }
        if public {
            mask.retain(|p| PUBLIC_USER.contains(&p.as_str()));
        }
        let mut v = u.json(Some(&mask));
        if mask.contains("contact_info") && !public {
            let mut ci = json!({"contact_type": "CONTACT_TYPE_OTHER",
                "contact_method": "CONTACT_METHOD_EMAIL", "value": u.email});
            if let Some(t) = u.validated_at {
                ci["validated_at"] = ts(t).into();
            }
            v["contact_info"] = json!([ci]);
        }
        Ok(v)
    };
    run().map_or_else(|err| api_err(&err), |v| ok_json(&v))
}

fn get_org(st: &Inner, cx: &Ctx, a: &Result<Auth, TErr>, id: &str) -> Response {
    let run = || -> Result<Value, TErr> {
        require_authenticated(st, a)?;
        let mut mask: BTreeSet<String> = mask_from_query(cx).into_iter().collect();
        mask.extend(["ids", "created_at", "updated_at"].map(String::from));
        let not_found =
            || terr("pkg/identityserver/store:organization_not_found").with("organization_id", id);
        let admin = a.as_ref().is_ok_and(|a| a.is_admin);
        if !admin {
            let err = terr("pkg/auth/rights:no_organization_rights").with("uid", id);
            if !mask.iter().all(|p| PUBLIC_ORG.contains(&p.as_str())) {
                return Err(err);
            }
        }
        let created = st.orgs.get(id).ok_or_else(not_found)?;
        Ok(
            json!({"ids": {"organization_id": id}, "created_at": ts(*created),
            "updated_at": ts(*created)}),
        )
    };
    run().map_or_else(|err| api_err(&err), |v| ok_json(&v))
}

fn list_applications(st: &Inner, a: &Result<Auth, TErr>) -> Response {
    let a = match a {
        Ok(a) => a,
        Err(err) => return api_err(err),
    };
    let Some(user) = a.user.clone() else {
        return ok_json(&json!({}));
    };
    if let Err(err) = require_user(st, &Ok(a.clone()), &user, "RIGHT_USER_APPLICATIONS_LIST") {
        return api_err(&err);
    }
    let mut r = ok_json(&json!({}));
    r.headers_mut()
        .insert("x-total-count", HeaderValue::from_static("0"));
    r
}

/// A `User` as sent in a request body.
#[derive(Default)]
struct UserIn {
    id: Option<String>,
    name: String,
    description: String,
    attributes: BTreeMap<String, String>,
    email: String,
    validated_at: Option<DateTime<Utc>>,
    password: String,
    require_password_update: bool,
    state: i64,
    state_description: String,
    admin: bool,
    temporary_password: String,
}

/// A field by its proto name or its lowerCamelCase JSON name; null is absent.
fn field<'a>(o: &'a Map<String, Value>, snake: &str) -> Option<&'a Value> {
    let mut camel = String::new();
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else {
            camel.push(if up { c.to_ascii_uppercase() } else { c });
            up = false;
        }
    }
    o.get(snake)
        .or_else(|| o.get(&camel))
        .filter(|v| !v.is_null())
}

fn string_field(o: &Map<String, Value>, k: &str) -> Result<String, String> {
    match field(o, k) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(format!("invalid value for string field {k}: {v}")),
    }
}

fn bool_field(o: &Map<String, Value>, k: &str) -> Result<bool, String> {
    match field(o, k) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("invalid value for bool field {k}: {v}")),
    }
}

fn parse_user(v: &Value) -> Result<UserIn, String> {
    let o = v.as_object().ok_or("user is not an object")?;
    let mut u = UserIn {
        name: string_field(o, "name")?,
        description: string_field(o, "description")?,
        email: string_field(o, "primary_email_address")?,
        password: string_field(o, "password")?,
        require_password_update: bool_field(o, "require_password_update")?,
        state_description: string_field(o, "state_description")?,
        admin: bool_field(o, "admin")?,
        temporary_password: string_field(o, "temporary_password")?,
        ..UserIn::default()
    };
    if let Some(ids) = field(o, "ids") {
        let ids = ids.as_object().ok_or("ids is not an object")?;
        u.id = Some(string_field(ids, "user_id")?);
    }
    if let Some(attrs) = field(o, "attributes") {
        for (k, v) in attrs.as_object().ok_or("attributes is not an object")? {
            u.attributes.insert(
                k.clone(),
                v.as_str().ok_or("attribute is not a string")?.into(),
            );
        }
    }
    if let Some(t) = field(o, "primary_email_address_validated_at") {
        u.validated_at = Some(parse_time(t.as_str().ok_or("invalid time")?)?);
    }
    for k in [
        "created_at",
        "updated_at",
        "password_updated_at",
        "temporary_password_expires_at",
    ] {
        if let Some(t) = field(o, k) {
            parse_time(t.as_str().ok_or("invalid time")?)?;
        }
    }
    if let Some(s) = field(o, "state") {
        u.state = match s {
            Value::Number(n) => n.as_i64().ok_or("invalid state")?,
            Value::String(s) => STATES
                .iter()
                .position(|n| n == s || n.strip_prefix("STATE_") == Some(s.as_str()))
                .map(|i| i as i64)
                .or_else(|| s.parse().ok())
                .ok_or(format!(
                    "could not read State enum: unknown value for enum: {s:?}"
                ))?,
            v => return Err(format!("invalid value type for enum: {v}")),
        };
    }
    Ok(u)
}

/// The first JSON value of a body (Go's `json.Decoder.Decode`); `None` on EOF.
fn first_json(body: &[u8]) -> Result<Option<Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut it = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    it.next().transpose().map_err(|e| e.to_string())
}

/// The generated mail check: `mail.ParseAddress`, then the hostname rules.
fn email_shape_ok(a: &str) -> bool {
    let Some((local, host)) = a.rsplit_once('@') else {
        return false;
    };
    let host_l = host.trim_end_matches('.').to_lowercase();
    !local.is_empty()
        && local.len() <= 64
        && a.len() <= 254
        && host.len() <= 253
        && !a.contains(|c: char| c.is_whitespace() || "<>\"(),;:[]\\".contains(c))
        && host_l.split('.').all(|p| {
            !p.is_empty()
                && p.len() <= 63
                && !p.starts_with('-')
                && !p.ends_with('-')
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// `validate.Email`.
fn validate_email(a: &str) -> Result<(), TErr> {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(&R, "^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$");
    if r.is_match(a) {
        return Ok(());
    }
    Err(terr("pkg/validate:email").with("email", a))
}

/// The `User` fields with validation rules, in the order the fake checks them
/// (the generated validator walks a map, so the stack's order is random).
const CHECKED: [&str; 9] = [
    "ids",
    "name",
    "description",
    "attributes",
    "primary_email_address",
    "password",
    "state",
    "state_description",
    "temporary_password",
];
const EMBEDDED: &str = "embedded message failed validation";

/// `User.ValidateFields(fields...)`.
fn validate_user(u: &UserIn, fields: &[&str]) -> Result<(), TErr> {
    const V: &str = "UserValidationError";
    let long = |s: &str, n: usize| s.chars().count() > n;
    let max = |n: usize| format!("value length must be at most {n} runes");
    for f in CHECKED {
        if !fields.contains(&f) {
            continue;
        }
        match f {
            "ids" => match &u.id {
                None => return Err(verr("ids", "value is required", V)),
                Some(id) => {
                    if let Some(reason) = id_reason(id) {
                        return Err(verr("ids", EMBEDDED, V).because(verr(
                            "user_id",
                            reason,
                            "UserIdentifiersValidationError",
                        )));
                    }
                }
            },
            "name" if long(&u.name, 50) => return Err(verr(f, &max(50), V)),
            "description" if long(&u.description, 2000) => return Err(verr(f, &max(2000), V)),
            "attributes" => {
                if u.attributes.len() > 10 {
                    return Err(verr(f, "value must contain no more than 10 pair(s)", V));
                }
                static R: OnceLock<Regex> = OnceLock::new();
                let key_re = re(&R, "^[a-z0-9](?:[-]?[a-z0-9]){2,}$");
                for (k, v) in &u.attributes {
                    let reason = if long(k, 36) {
                        max(36)
                    } else if !key_re.is_match(k) {
                        "value does not match regex pattern \"^[a-z0-9](?:[-]?[a-z0-9]){2,}$\""
                            .into()
                    } else if long(v, 200) {
                        max(200)
                    } else {
                        continue;
                    };
                    return Err(verr(format!("attributes[{k}]"), &reason, V));
                }
            }
            "primary_email_address" if !email_shape_ok(&u.email) => {
                return Err(verr(f, "value must be a valid email address", V))
            }
            "password" if long(&u.password, 1000) => return Err(verr(f, &max(1000), V)),
            "state" if !(0..5).contains(&u.state) => {
                return Err(verr(f, "value must be one of the defined enum values", V))
            }
            "state_description" if long(&u.state_description, 128) => {
                return Err(verr(f, &max(128), V))
            }
            "temporary_password" if long(&u.temporary_password, 1000) => {
                return Err(verr(f, &max(1000), V))
            }
            _ => {}
        }
    }
    Ok(())
}

/// `validatePasswordStrength` with the default requirements.
fn check_password(id: &str, pw: &str) -> Result<(), TErr> {
    let fail = |name, n: u32| Err(terr(name).with("n", n));
    if pw.len() < 8 {
        return fail("pkg/identityserver:password_strength_min_length", 8);
    }
    if pw.len() > 1000 {
        return fail("pkg/identityserver:password_strength_max_length", 1000);
    }
    if !pw.chars().any(char::is_uppercase) {
        return fail("pkg/identityserver:password_strength_uppercase", 1);
    }
    if !pw.chars().any(char::is_numeric) {
        return fail("pkg/identityserver:password_strength_digits", 1);
    }
    if pw.to_lowercase().contains(&id.to_lowercase()) {
        return Err(terr("pkg/identityserver:password_contains_user_id"));
    }
    Ok(())
}

fn already_exists() -> TErr {
    terr("pkg/util/store:already_exists")
}

/// Another live user holds this email (case-insensitive).
fn email_taken(st: &Inner, email: &str, except: &str) -> bool {
    let l = email.to_lowercase();
    st.users
        .values()
        .any(|u| u.live() && u.id != except && u.email.to_lowercase() == l)
}

fn create_user(st: &mut Inner, cx: &Ctx, a: &Result<Auth, TErr>) -> Response {
    let parsed = first_json(cx.body).and_then(|v| {
        let Some(v) = v else { return Ok(None) };
        let o = v.as_object().ok_or("request is not an object")?;
        field(o, "user").map(parse_user).transpose()
    });
    let mut u = match parsed {
        Ok(Some(u)) => u,
        Ok(None) => {
            return api_err(&verr(
                "user",
                "value is required",
                "CreateUserRequestValidationError",
            ))
        }
        Err(msg) => return gw_err(3, 400, &msg),
    };
    let outer = |err: TErr| verr("user", EMBEDDED, "CreateUserRequestValidationError").because(err);
    if let Err(err) = validate_user(&u, &CHECKED) {
        return api_err(&outer(err));
    }
    let id = u.id.clone().unwrap();
    let admin = a.as_ref().is_ok_and(|a| a.is_admin);
    let run = |st: &mut Inner, u: &mut UserIn| -> Result<Value, TErr> {
        if BLOCKLIST.split_whitespace().any(|b| b == id) {
            return Err(terr("pkg/identityserver/blocklist:forbidden_id").with("id", id.as_str()));
        }
        validate_email(&u.email)?;
        if !admin {
            u.validated_at = None;
            u.require_password_update = false;
            u.state = if st.approval_required { 0 } else { 1 };
            u.state_description = if st.approval_required {
                "admin approval required".into()
            } else {
                String::new()
            };
            u.admin = false;
        }
        check_password(&id, &u.password)?;
        if st.users.contains_key(&id) || st.orgs.contains_key(&id) || email_taken(st, &u.email, "")
        {
            return Err(already_exists());
        }
        let now = Utc::now();
        let user = User {
            id: id.clone(),
            name: std::mem::take(&mut u.name),
            description: std::mem::take(&mut u.description),
            attributes: std::mem::take(&mut u.attributes),
            email: u.email.clone(),
            validated_at: u.validated_at,
            password: std::mem::take(&mut u.password),
            require_password_update: u.require_password_update,
            state: u.state,
            state_description: std::mem::take(&mut u.state_description),
            admin: u.admin,
            self_registered: !admin,
            created_at: now,
            updated_at: now,
            password_updated_at: now,
            deleted_at: None,
        };
        let v = user.json(None);
        st.users.insert(id.clone(), user);
        st.send_validation(&id);
        Ok(v)
    };
    run(st, &mut u).map_or_else(|err| api_err(&err), |v| ok_json(&v))
}

fn update_user(st: &mut Inner, cx: &Ctx, a: &Result<Auth, TErr>, id: &str) -> Response {
    let parsed = first_json(cx.body).and_then(|v| {
        let v = v.unwrap_or(json!({}));
        let o = v.as_object().ok_or("request is not an object")?;
        let u = field(o, "user")
            .map(parse_user)
            .transpose()?
            .unwrap_or_default();
        let paths: Vec<String> = match field(o, "field_mask") {
            None => Vec::new(),
            Some(Value::String(s)) => s
                .split(',')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
            Some(Value::Object(m)) => m
                .get("paths")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            Some(v) => return Err(format!("invalid field mask: {v}")),
        };
        Ok((u, paths))
    });
    let (mut u, paths) = match parsed {
        Ok(p) => p,
        Err(msg) => return gw_err(3, 400, &msg),
    };
    u.id = Some(id.into());
    let run = |st: &mut Inner, u: &mut UserIn| -> Result<Value, TErr> {
        forbidden_paths(&paths, &["password", "password_updated_at"])?;
        let fields: Vec<&str> = if paths.is_empty() {
            CHECKED.to_vec()
        } else {
            CHECKED
                .iter()
                .copied()
                .filter(|f| *f == "ids" || paths.iter().any(|p| p == f))
                .collect()
        };
        validate_user(u, &fields).map_err(|err| {
            verr("user", EMBEDDED, "UpdateUserRequestValidationError").because(err)
        })?;
        require_user(st, a, id, "RIGHT_USER_SETTINGS_BASIC")?;
        let mut mask: BTreeSet<String> = paths.iter().cloned().collect();
        for p in ["ids", "created_at", "updated_at", "contact_info"] {
            mask.remove(p);
        }
        if mask.is_empty() {
            mask.insert("updated_at".into());
        }
        let email = mask.contains("primary_email_address");
        if email {
            validate_email(&u.email)?;
        }
        let admin = a.as_ref().is_ok_and(|a| a.is_admin);
        if !admin {
            for f in [
                "primary_email_address_validated_at",
                "require_password_update",
                "state",
                "state_description",
                "admin",
                "temporary_password",
                "temporary_password_created_at",
                "temporary_password_expires_at",
            ] {
                if mask.contains(f) {
                    return Err(terr("pkg/identityserver:update_admin_field").with("field", f));
                }
            }
            if email {
                u.validated_at = None;
                mask.insert("primary_email_address_validated_at".into());
            }
        }
        if mask.contains("state") && !mask.contains("state_description") {
            mask.insert("state_description".into());
            u.state_description.clear();
        }
        let old = st.live_user(id).ok_or_else(|| user_not_found(id))?;
        if admin && email {
            u.validated_at = old.validated_at;
            mask.insert("primary_email_address_validated_at".into());
        }
        if email && email_taken(st, &u.email, id) {
            // The store's unique violation is swallowed (`UpdateUser` returns
            // nil, nil) and the handler dereferences the nil user.
            return Err(terr("pkg/rpcserver:rpc_recovered"));
        }
        let usr = st.users.get_mut(id).unwrap();
        for f in &mask {
            match f.as_str() {
                "name" => usr.name = std::mem::take(&mut u.name),
                "description" => usr.description = std::mem::take(&mut u.description),
                "attributes" => usr.attributes = std::mem::take(&mut u.attributes),
                "primary_email_address" => usr.email = u.email.clone(),
                "primary_email_address_validated_at" => usr.validated_at = u.validated_at,
                "require_password_update" => {
                    usr.require_password_update = u.require_password_update
                }
                "state" => usr.state = u.state,
                "state_description" => usr.state_description = u.state_description.clone(),
                "admin" => usr.admin = u.admin,
                _ => {}
            }
        }
        usr.updated_at = Utc::now();
        let v = usr.json(Some(&mask));
        if email && usr.validated_at.is_none() {
            st.send_validation(id);
        }
        Ok(v)
    };
    run(st, &mut u).map_or_else(|err| api_err(&err), |v| ok_json(&v))
}

fn create_login_token(st: &mut Inner, cx: &Ctx, a: &Result<Auth, TErr>, id: &str) -> Response {
    let values: Vec<String> = cx
        .form()
        .into_iter()
        .filter(|(k, _)| k == "skip_email" || k == "skipEmail")
        .map(|(_, v)| v)
        .collect();
    let skip_email = match values.as_slice() {
        [] => false,
        [v] => match v.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => {
                let msg = format!("parsing field \"skip_email\": strconv.ParseBool: parsing {v:?}: invalid syntax");
                return gw_err(3, 400, &msg);
            }
        },
        vs => {
            return gw_err(
                3,
                400,
                &format!("too many values for field \"skip_email\": {vs:?}"),
            )
        }
    };
    let run = |st: &mut Inner| -> Result<Value, TErr> {
        check_ids(id, "CreateLoginTokenRequestValidationError")?;
        if !st.tokens_enabled {
            return Err(terr("pkg/identityserver:login_tokens_disabled"));
        }
        let target = st.live_user(id).ok_or_else(|| {
            terr("pkg/identityserver/store:entity_not_found")
                .with("entity_id", id)
                .with("entity_type", "user")
        })?;
        let (email, name, target_admin) = (target.email.clone(), target.name.clone(), target.admin);
        let now = Utc::now();
        let active = st
            .tokens
            .iter()
            .filter(|t| t.user == id && !t.used && t.expires_at > now);
        if active.count() >= 5 {
            return Err(terr("pkg/identityserver:login_tokens_still_valid"));
        }
        let admin = a.as_ref().is_ok_and(|a| a.is_admin);
        let token = gen_key();
        let ttl = st.token_ttl;
        st.tokens.push(LoginToken {
            user: id.into(),
            token: token.clone(),
            expires_at: now + chrono::Duration::from_std(ttl).unwrap(),
            used: false,
        });
        if !admin || !skip_email {
            let body = format!(
                "Dear {},\n\nA login token was requested for your user \"{id}\" on {SITE}.\n\n\
                 You can now go to {}{}/token-login?token={token} to log in.\nAlternatively, you \
                 can use the login token \"{token}\" directly.\n\nYour login token expires in {} \
                 minutes, so if you don't log in before then, you'll have to request a new token \
                 if you still want to log in.",
                if name.is_empty() { id } else { &name },
                st.base,
                st.mount,
                ttl.as_secs() / 60
            );
            st.send(&email, "login_token", body);
        }
        Ok(if admin && !target_admin {
            json!({"token": token})
        } else {
            json!({})
        })
    };
    run(st).map_or_else(|err| api_err(&err), |v| ok_json(&v))
}

// ---------------------------------------------------------------- account app

fn account(st: &mut Inner, cx: &Ctx, rest: &str) -> Response {
    let m = cx.method.as_str();
    let (token, set) = match csrf(cx, header(cx.headers, "authorization")) {
        Ok(c) => c.unwrap_or_default(),
        Err(err) => return web_err(cx, &err),
    };
    let mut r = match (m, rest) {
        ("POST", "/api/auth/login") => login(st, cx),
        ("POST", "/api/auth/token-login") => token_login(st, cx),
        ("POST", "/api/auth/logout") => logout(st, cx),
        ("GET", "/api/me") => me(st, cx),
        ("GET" | "POST", "/authorize") => authorize(st, cx),
        ("GET", "/logout") => client_logout(st, cx),
        ("GET", "/login" | "/token-login") => match st.browser_session(cx.headers) {
            Ok(_) => {
                let (p, q) = path_and_query(cx.q("n").unwrap_or(&st.mount));
                redirect(cx, 302, &format!("{p}?{q}"))
            }
            Err((_, remove)) => {
                let page = account_page(st, cx, rest, &token);
                let mut r = respond(200, "text/html; charset=utf-8", page);
                if remove {
                    add_cookie(&mut r, set_cookie(cx, "_session", TOMBSTONE, "/", None));
                }
                r
            }
        },
        _ => respond(
            200,
            "text/html; charset=utf-8",
            account_page(st, cx, rest, &token),
        ),
    };
    if let Some(c) = set {
        add_cookie(&mut r, c);
    }
    r
}

fn account_page(st: &Inner, cx: &Ctx, rest: &str, csrf: &str) -> String {
    let mount = &st.mount;
    let n = cx.q("n").unwrap_or(mount);
    let (title, form) = match rest {
        "/login" => (
            "Login",
            format!(
                "<form id=\"form\" method=\"post\" action=\"{mount}/api/auth/login\">\
                <input name=\"user_id\" autocomplete=\"username\">\
                <input name=\"password\" type=\"password\" autocomplete=\"current-password\">\
                <button type=\"submit\">Login</button></form>"
            ),
        ),
        "/token-login" => (
            "Login with token",
            format!(
                "<form id=\"form\" method=\"post\" action=\"{mount}/api/auth/token-login\">\
                <input name=\"token\" value=\"{}\"><button type=\"submit\">Login</button></form>",
                esc(cx.q("token").unwrap_or(""))
            ),
        ),
        _ => ("Account", String::new()),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><title>{title} - {SITE} Account</title></head>\
         <body><div id=\"app\"><h1>{title}</h1>{form}</div><script>\
         window.__ttn_config__ = {{APP_ROOT:\"{mount}\",SITE_NAME:\"{SITE}\",CSRF_TOKEN:\"{csrf}\"}};\
         var f = document.getElementById('form');\
         if (f) f.addEventListener('submit', function (e) {{ e.preventDefault();\
         fetch(f.action, {{method: 'POST', body: new URLSearchParams(new FormData(f)),\
         headers: {{'X-CSRF-Token': '{csrf}'}}}}).then(function (r) {{\
         if (r.status === 204) window.location = {}; }}); }});</script></body></html>",
        serde_json::to_string(n).unwrap()
    )
}

fn parse_error() -> TErr {
    terr("pkg/account:parse")
}

/// Go's `url.Parse(next)`: its path and raw query (scheme and host dropped).
fn path_and_query(next: &str) -> (String, String) {
    let abs = if next.starts_with("//") {
        format!("http:{next}")
    } else {
        next.to_string()
    };
    if let Ok(u) = url::Url::parse(&abs) {
        return (u.path().to_string(), u.query().unwrap_or("").to_string());
    }
    let n = next.split('#').next().unwrap();
    let (p, q) = n.split_once('?').unwrap_or((n, ""));
    (p.to_string(), q.to_string())
}

/// The JSON body (exact `application/json` only) or the form values.
fn login_fields(cx: &Ctx, keys: &[&str]) -> Result<Vec<String>, TErr> {
    if header(cx.headers, "content-type") == Some("application/json") {
        let v = first_json(cx.body)
            .map_err(|_| parse_error())?
            .ok_or_else(parse_error)?;
        let o = match &v {
            Value::Object(o) => o.clone(),
            Value::Null => Map::new(),
            _ => return Err(parse_error()),
        };
        return keys
            .iter()
            .map(|k| match o.get(*k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(parse_error()),
            })
            .collect();
    }
    let form = cx.form();
    Ok(keys
        .iter()
        .map(|k| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect())
}

fn session_created(st: &mut Inner, cx: &Ctx, user: &str) -> Response {
    let value = st.new_session(user);
    let mut r = respond(204, "text/plain", "");
    add_cookie(&mut r, set_cookie(cx, "_session", &value, "/", None));
    r
}

fn login(st: &mut Inner, cx: &Ctx) -> Response {
    let run = |st: &mut Inner| -> Result<String, TErr> {
        let f = login_fields(cx, &["user_id", "password"])?;
        if f[0].trim().is_empty() {
            return Err(terr("pkg/account:missing_user_id"));
        }
        if f[1].trim().is_empty() {
            return Err(terr("pkg/account:missing_password"));
        }
        if let Some(reason) = id_reason(&f[0]) {
            return Err(verr("user_id", reason, "UserIdentifiersValidationError"));
        }
        match st.live_user(&f[0]) {
            Some(u) if u.password == f[1] => Ok(f[0].clone()),
            _ => Err(terr("pkg/account/session:no_user_id_password_match")),
        }
    };
    match run(st) {
        Ok(user) => session_created(st, cx, &user),
        Err(err) => web_err(cx, &err),
    }
}

fn token_login(st: &mut Inner, cx: &Ctx) -> Response {
    let run = |st: &mut Inner| -> Result<String, TErr> {
        let token = login_fields(cx, &["token"])?.remove(0);
        if token.trim().is_empty() {
            return Err(terr("pkg/account:missing_token"));
        }
        let now = Utc::now();
        let t = st
            .tokens
            .iter_mut()
            .find(|t| t.token == token)
            .ok_or(terr("pkg/identityserver/store:login_token_not_found"))?;
        if t.expires_at < now {
            return Err(terr("pkg/identityserver/store:login_token_expired"));
        }
        if t.used {
            return Err(terr("pkg/identityserver/store:login_token_already_used"));
        }
        t.used = true;
        Ok(t.user.clone())
    };
    match run(st) {
        Ok(user) => session_created(st, cx, &user),
        Err(err) => web_err(cx, &err),
    }
}

/// `requireLogin`: the session or 401 `not_authenticated` (cookie removed
/// when it no longer decodes or its session is gone).
fn require_login(st: &Inner, cx: &Ctx) -> Result<(String, String), Box<Response>> {
    st.browser_session(cx.headers).map_err(|(cause, remove)| {
        let err = terr("pkg/account:not_authenticated").because(cause);
        let mut r = web_err(cx, &err);
        if remove {
            add_cookie(&mut r, set_cookie(cx, "_session", TOMBSTONE, "/", None));
        }
        Box::new(r)
    })
}

fn logout(st: &mut Inner, cx: &Ctx) -> Response {
    match require_login(st, cx) {
        Err(r) => *r,
        Ok((_, sid)) => {
            st.sessions.remove(&sid);
            let mut r = respond(204, "text/plain", "");
            add_cookie(&mut r, set_cookie(cx, "_session", TOMBSTONE, "/", None));
            r
        }
    }
}

fn me(st: &Inner, cx: &Ctx) -> Response {
    match require_login(st, cx) {
        Err(r) => *r,
        Ok((user, sid)) => {
            let Some(u) = st.live_user(&user) else {
                return web_err(cx, &user_not_found(&user));
            };
            let mask: BTreeSet<String> = PUBLIC_USER.iter().map(|s| s.to_string()).collect();
            let body = json!({"user": u.json(Some(&mask)),
                "logged_in_at": ts(st.sessions[&sid].created_at), "session_id": sid});
            ok_json(&body)
        }
    }
}

// ---------------------------------------------------------------- OAuth

/// osin's `ValidateUri` against the console client's registered URIs (the
/// relative one, or any origin with the same path prefix).
fn valid_redirect(uri: &str, base: &str) -> bool {
    let path = if uri.starts_with('/') && !uri.starts_with("//") {
        Some(uri.to_string())
    } else {
        url::Url::parse(uri).ok().map(|u| u.path().to_string())
    };
    path.is_some_and(|p| p.starts_with(base) && !p.contains(".."))
}

fn authorize(st: &mut Inner, cx: &Ctx) -> Response {
    let (user, sid) = match st.browser_session(cx.headers) {
        Ok(s) => s,
        Err((_, remove)) => {
            let n = format!("{}?{}", cx.path, encode_query(&cx.query));
            let login = format!("{}/login?{}", st.mount, encode_query(&[("n".into(), n)]));
            let mut r = redirect(cx, 302, &login);
            if remove {
                add_cookie(&mut r, set_cookie(cx, "_session", TOMBSTONE, "/", None));
            }
            return r;
        }
    };
    let form = cx.form();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    if get("client_id") != "console" {
        return web_err(cx, &terr("pkg/oauth:unauthorized_client"));
    }
    let redirect_uri = match get("redirect_uri") {
        "" => "/console/oauth/callback",
        u if valid_redirect(u, "/console/oauth/callback") => u,
        _ => return web_err(cx, &terr("pkg/oauth:invalid_redirect_uri")),
    };
    let mut out: Vec<(String, String)> = Vec::new();
    if get("response_type") == "code" {
        let (id, key) = (gen_id(), gen_key());
        let expires_at = Utc::now() + chrono::Duration::minutes(5);
        st.codes.insert(
            id.clone(),
            Code {
                user,
                session_id: sid,
                expires_at,
            },
        );
        out.push(("code".into(), format!("{AUT}.{id}.{key}")));
    } else {
        out.push(("error".into(), "unsupported_response_type".into()));
    }
    if !get("state").is_empty() {
        out.push(("state".into(), get("state").into()));
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    redirect(
        cx,
        302,
        &format!("{redirect_uri}{sep}{}", encode_query(&out)),
    )
}

/// `ClientLogout`: needs `access_token_id`; deletes that token, its session
/// and the browser's session, removes `_session`, then redirects.
fn client_logout(st: &mut Inner, cx: &Ctx) -> Response {
    let Some(at_id) = cx.q("access_token_id").filter(|v| !v.is_empty()) else {
        return web_err(cx, &terr("pkg/oauth:missing_param_access_token_id"));
    };
    let mut target = st.mount.clone();
    if let Some(at) = st.access.get(at_id) {
        let param = cx.q("post_logout_redirect_uri").unwrap_or("");
        if param.is_empty() {
            target = "/console".into();
        } else if valid_redirect(param, "/console") {
            target = param.into();
        } else {
            return web_err(cx, &terr("pkg/oauth:invalid_logout_redirect_uri"));
        }
        let sid = at.session_id.clone();
        st.access.remove(at_id);
        st.sessions.remove(&sid);
    }
    if let Ok((_, sid)) = st.browser_session(cx.headers) {
        st.sessions.remove(&sid);
    }
    let mut r = redirect(cx, 302, &target);
    if cookie(cx.headers, "_session").is_some_and(|c| c != TOMBSTONE) {
        add_cookie(&mut r, set_cookie(cx, "_session", TOMBSTONE, "/", None));
    }
    r
}

// ---------------------------------------------------------------- console

fn console(st: &mut Inner, cx: &Ctx, rest: &str) -> Response {
    match (cx.method.as_str(), rest) {
        ("GET", "/login/ttn-stack") => {
            let next = cx.q("next").unwrap_or("");
            let next = if next.starts_with(['/', '#', '?']) {
                next
            } else {
                ""
            };
            let secret: String = base32(&rand_bytes(10));
            let value = st.seal("_console_state", &json!({"secret": secret, "next": next}));
            let query = encode_query(&[
                ("client_id".into(), "console".into()),
                ("redirect_uri".into(), "/console/oauth/callback".into()),
                ("response_type".into(), "code".into()),
                ("state".into(), secret),
            ]);
            let mut r = redirect(cx, 302, &format!("{}/authorize?{query}", st.mount));
            add_cookie(
                &mut r,
                set_cookie(cx, "_console_state", &value, "/console", Some(600)),
            );
            r
        }
        ("GET", "/oauth/callback") => {
            let state =
                cookie(cx.headers, "_console_state").and_then(|c| st.unseal("_console_state", &c));
            let get = |k: &str| cx.q(k).unwrap_or("").to_string();
            let checked = if !get("error").is_empty() {
                Err(terr("pkg/web/oauthclient:refused").with("reason", get("error_description")))
            } else if get("state").is_empty() {
                Err(terr("pkg/web/oauthclient:no_state_param"))
            } else if get("code").is_empty() {
                Err(terr("pkg/web/oauthclient:no_code"))
            } else if state.as_ref().and_then(|s| s["secret"].as_str())
                != Some(get("state").as_str())
            {
                Err(terr("pkg/web/oauthclient:invalid_state"))
            } else {
                let code = get("code");
                let found = split_token(&code)
                    .filter(|(t, _, _)| *t == AUT)
                    .and_then(|(_, id, _)| st.codes.remove(id))
                    .filter(|c| c.expires_at > Utc::now());
                found.ok_or_else(|| {
                    terr("pkg/web/oauthclient:exchange").because(terr("pkg/oauth:invalid_grant"))
                })
            };
            let code = match checked {
                Ok(c) => c,
                Err(err) => return web_err(cx, &err),
            };
            let (id, secret, now) = (gen_id(), gen_key(), Utc::now());
            st.access.insert(
                id.clone(),
                AccessToken {
                    user: code.user,
                    secret: secret.clone(),
                    session_id: code.session_id,
                    created_at: now,
                    expires_at: now + chrono::Duration::hours(1),
                },
            );
            let auth = st.seal(
                "_console_auth",
                &json!({"t": format!("{ACC}.{id}.{secret}"),
                "expiry": ts(now + chrono::Duration::hours(1))}),
            );
            let next = state
                .as_ref()
                .and_then(|s| s["next"].as_str())
                .unwrap_or("")
                .to_string();
            let mut r = redirect(cx, 302, &format!("{}{next}", st.console_root));
            add_cookie(
                &mut r,
                set_cookie(cx, "_console_state", TOMBSTONE, "/console", None),
            );
            add_cookie(
                &mut r,
                set_cookie(cx, "_console_auth", &auth, "/console", None),
            );
            r
        }
        ("GET", "/api/auth/token") | ("POST", "/api/auth/logout") => {
            let value =
                cookie(cx.headers, "_console_auth").and_then(|c| st.unseal("_console_auth", &c));
            let Some(v) = value else {
                return web_err(cx, &terr("pkg/web/oauthclient:no_auth_cookie"));
            };
            let token = v["t"].as_str().unwrap_or("").to_string();
            if *cx.method == Method::GET {
                // The stack refreshes here; a deleted token cannot be refreshed.
                if st.console_user(cx.headers).is_none() {
                    let cause = terr("pkg/oauth:invalid_grant");
                    return web_err(cx, &terr("pkg/web/oauthclient:refresh").because(cause));
                }
                return ok_json(&json!({"access_token": token, "expiry": v["expiry"]}));
            }
            let id = split_token(&token)
                .map(|(_, id, _)| id.to_string())
                .unwrap_or_default();
            let uri = format!(
                "{}/logout?{}",
                st.mount,
                encode_query(&[
                    ("access_token_id".into(), id),
                    ("post_logout_redirect_uri".into(), "/console".into()),
                ])
            );
            let mut r = ok_json(&json!({"op_logout_uri": uri}));
            add_cookie(
                &mut r,
                set_cookie(cx, "_console_auth", TOMBSTONE, "/console", None),
            );
            r
        }
        _ => match st.console_user(cx.headers) {
            None => {
                let mut next = rest.to_string();
                if !cx.query.is_empty() {
                    next = format!("{next}?{}", encode_query(&cx.query));
                }
                let q = encode_query(&[("next".into(), next)]);
                redirect(cx, 302, &format!("/console/login/ttn-stack?{q}"))
            }
            Some((user, token_id)) => {
                let html = format!(
                    "<!doctype html><html lang=\"en\"><head><title>{SITE} Console</title></head>\
                     <body><div id=\"app\"><p>Signed in as {user}</p>\
                     <a id=\"logout\" href=\"{}/logout?access_token_id={token_id}&post_logout_redirect_uri=/console\">\
                     Logout</a></div></body></html>",
                    st.mount
                );
                respond(200, "text/html; charset=utf-8", html)
            }
        },
    }
}
