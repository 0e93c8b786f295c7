//! The web admin UI under `/admin/` (the API stays under `/admin/api/`): server-rendered HTML
//! that works without JavaScript, with a small embedded script for live parts (the overview
//! refreshes itself, logs follow). Same password as the API, same limit on failed logins.
//!
//! | path | page |
//! |---|---|
//! | `GET /admin/` (`?part=funkos`: the table only) | overview: funkos, instances, traffic |
//! | `GET /admin/funkos/<name>` | instances, images; scale, deploy, stop, purge |
//! | `POST /admin/funkos/<name>/{scale,deploy,stop,purge}` | streamed progress page |
//! | `GET /admin/funkos/<name>/logs[?tail=N]`, `.../logs/stream` | logs; live NDJSON stream |
//! | `GET`/`POST /admin/secrets`, `.../secrets/<funko>/<secret>/delete` | names, add, delete |
//! | `POST /admin/funkos/<name>/keys`, `.../keys/<key>/delete` | make a key (shown once), remove one |
//! | `GET /admin/system` | versions, Docker engine, discovery, configuration |
//! | `GET`/`POST /admin/login`, `POST /admin/logout` | [`sessions`] |
//!
//! The overview and funko pages render from discovery's last lists of Docker's containers and
//! images ([`DiscoveryView`]) and the gateway's own counters ([`stats`]): they make no Docker call.
//! Pages are [`pages`] templates; every response carries a strict Content-Security-Policy.

pub mod pages;
pub mod sessions;
pub mod stats;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use faaso::engine::status::FunkoStatus;
use faaso::store::state::StateDir;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use serde_json::{Value, json};

use crate::admin::Admin;
use crate::admin::auth::Verdict;
use crate::admin::request::read_small_body;
use crate::admin::stream::{Encoding, Line, WhenClientLeaves, stream_encoded, stream_operation};
use crate::services::discovery::DiscoveryView;
use pages::{Frame, Pages, STREAM_MARK};
use sessions::{Active, COOKIE, LOGIN_COOKIE, Sessions, cookie, set_cookie, token, tokens_match};
use stats::Recent;

/// Lines of each instance the logs page shows unless asked.
const DEFAULT_TAIL: u32 = 100;
/// The most lines of each instance the logs page shows.
const MAX_TAIL: u32 = 10_000;
/// The most instances a scale from the page asks for.
const MAX_SCALE: u32 = 1000;

/// Headers on every UI response: no inline script or style, no framing, no sniffing.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
];

/// The web UI's state.
pub struct Ui {
    pub sessions: Sessions,
    pub pages: Pages,
    pub recent: Arc<Recent>,
    pub discovery: Arc<DiscoveryView>,
    pub table: crate::SharedRoutes,
    pub started: Instant,
    pub started_at: SystemTime,
    /// The configuration as the system page shows it (no secrets).
    pub config: Vec<(&'static str, String)>,
    pub metrics_on: bool,
    /// `Strict-Transport-Security` for answers over HTTPS (`hsts_max_age`), as the proxy's.
    pub hsts: Option<http::HeaderValue>,
}

/// A request answered with an error page.
#[derive(Debug)]
pub struct Refusal {
    status: u16,
    message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

type Answer = std::result::Result<u16, Refusal>;

/// What one request is about.
struct Request {
    method: http::Method,
    path: String,
    query: String,
    cookies: String,
    secure: bool,
    client: Option<IpAddr>,
}

impl Request {
    fn cookie(&self, name: &str) -> Option<&str> {
        cookie(&self.cookies, name)
    }

    fn query(&self, name: &str) -> Option<String> {
        crate::admin::request::query_param(&self.query, name)
    }
}

/// Answers a request under `/admin` that is not for the API.
pub async fn handle(admin: &Admin, session: &mut Session, client: Option<IpAddr>) -> Result<()> {
    let started = Instant::now();
    let header = session.req_header();
    let cookies = header
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let request = Request {
        method: header.method.clone(),
        path: header.uri.path().to_string(),
        query: header.uri.query().unwrap_or("").to_string(),
        cookies,
        secure: session
            .digest()
            .is_some_and(|digest| digest.ssl_digest.is_some()),
        client,
    };
    let answer = route(admin, session, &request).await;
    let status = match answer {
        Ok(status) => status,
        Err(refusal) => {
            session.set_keepalive(None);
            let ui = &admin.ui;
            let csrf = request
                .cookie(COOKIE)
                .and_then(|id| ui.sessions.get(id, Instant::now()))
                .map(|active| active.csrf)
                .unwrap_or_default();
            let html = ui
                .pages
                .render(
                    "message",
                    &Frame {
                        title: "Refused",
                        nav: "",
                        csrf: &csrf,
                    },
                    json!({
                        "heading": heading_of(refusal.status),
                        "message": refusal.message,
                        "back": "/admin/",
                        "back_label": "Back to the overview",
                    }),
                )
                .unwrap_or_else(|err| err);
            send_html(admin, session, refusal.status, html, Vec::new()).await?;
            refusal.status
        }
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let client = client.map_or_else(|| "-".to_string(), |ip| ip.to_string());
    let method = &request.method;
    let route = &request.path;
    if status == 401 || status == 403 || status == 429 {
        tracing::warn!(target: "faaso::admin", %method, %route, %client, auth = "ui", status, duration_ms = elapsed_ms, "ui request refused");
    } else if request.method == http::Method::GET {
        tracing::debug!(target: "faaso::admin", %method, %route, %client, auth = "ui", status, duration_ms = elapsed_ms, "ui request");
    } else {
        tracing::info!(target: "faaso::admin", %method, %route, %client, auth = "ui", status, duration_ms = elapsed_ms, "ui request");
    }
    Ok(())
}

fn heading_of(status: u16) -> &'static str {
    match status {
        400 => "Not done",
        401 | 403 => "Not allowed",
        404 => "Not found",
        405 => "Not allowed here",
        413 => "Too large",
        429 => "Too many tries",
        503 => "Unavailable",
        _ => "Something went wrong",
    }
}

async fn route(admin: &Admin, session: &mut Session, request: &Request) -> Answer {
    use http::Method;
    let ui = &admin.ui;
    let Some(rest) = request.path.strip_prefix("/admin") else {
        return Err(refuse(404, "no such page"));
    };
    if rest.is_empty() {
        return redirect(admin, session, 308, "/admin/", Vec::new()).await;
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (&request.method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, ["assets", "style.css"]) => {
            asset(admin, session, "text/css; charset=utf-8", pages::STYLE).await
        }
        (&Method::GET | &Method::HEAD, ["assets", "app.js"]) => {
            asset(
                admin,
                session,
                "text/javascript; charset=utf-8",
                pages::SCRIPT,
            )
            .await
        }
        (&Method::GET, ["login"]) => {
            if request
                .cookie(COOKIE)
                .and_then(|id| ui.sessions.get(id, Instant::now()))
                .is_some()
            {
                return redirect(admin, session, 303, "/admin/", Vec::new()).await;
            }
            let next = safe_next(request.query("next").as_deref());
            login_page(admin, session, request, 200, None, &next).await
        }
        (&Method::POST, ["login"]) => login(admin, session, request).await,
        _ => {
            let active = request
                .cookie(COOKIE)
                .and_then(|id| ui.sessions.get(id, Instant::now()));
            let Some(active) = active else {
                return not_logged_in(admin, session, request).await;
            };
            logged_in(admin, session, request, &segments, &active).await
        }
    }
}

/// A request without a live session: pages send the browser to the login form (and back after
/// it); anything else is refused.
async fn not_logged_in(admin: &Admin, session: &mut Session, request: &Request) -> Answer {
    let is_page = request.method == http::Method::GET
        && !request.path.ends_with("/stream")
        && request.query("part").is_none();
    if !is_page {
        return Err(refuse(
            401,
            "not logged in, or the session expired: log in again",
        ));
    }
    if !admin.auth.is_configured() {
        return login_page(admin, session, request, 503, None, "/admin/").await;
    }
    let next = if request.query.is_empty() {
        request.path.clone()
    } else {
        format!("{}?{}", request.path, request.query)
    };
    let location = format!(
        "/admin/login?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &next)
            .finish()
    );
    redirect(admin, session, 303, &location, Vec::new()).await
}

async fn logged_in(
    admin: &Admin,
    session: &mut Session,
    request: &Request,
    segments: &[&str],
    active: &Active,
) -> Answer {
    use http::Method;
    match (&request.method, segments) {
        (&Method::GET, []) => overview(admin, session, request, active).await,
        (&Method::GET, ["funkos", name]) => funko_page(admin, session, active, name).await,
        (&Method::POST, ["funkos", name, "keys"]) => {
            let form = read_form(session, active).await?;
            add_key(admin, session, active, name, &form).await
        }
        (&Method::POST, ["funkos", name, "keys", key, "delete"]) => {
            let name = valid(name)?;
            read_form(session, active).await?;
            admin
                .key_store()
                .remove(&name, key)
                .map_err(|e| from_admin(crate::admin::request::key_reject(e)))?;
            admin.keys.reload();
            redirect(
                admin,
                session,
                303,
                &format!("/admin/funkos/{name}#keys"),
                Vec::new(),
            )
            .await
        }
        (&Method::POST, ["funkos", name, operation]) => {
            let form = read_form(session, active).await?;
            operate(admin, session, active, name, operation, &form).await
        }
        (&Method::GET, ["funkos", name, "logs"]) => {
            logs_page(admin, session, request, active, name).await
        }
        (&Method::GET, ["funkos", name, "logs", "stream"]) => {
            logs_stream(admin, session, request, name).await
        }
        (&Method::GET, ["secrets"]) => secrets_page(admin, session, request, active).await,
        (&Method::POST, ["secrets"]) => {
            let form = read_form(session, active).await?;
            add_secret(admin, session, &form).await
        }
        (&Method::GET, ["secrets", funko, secret, "delete"]) => {
            let (funko, secret) = secret_names(funko, secret)?;
            let html = render(
                admin,
                "secret_delete",
                "Delete a secret",
                "secrets",
                active,
                json!({ "funko": funko, "secret": secret }),
            )?;
            send_html(admin, session, 200, html, Vec::new())
                .await
                .map_err(internal)?;
            Ok(200)
        }
        (&Method::POST, ["secrets", funko, secret, "delete"]) => {
            let (funko, secret) = secret_names(funko, secret)?;
            read_form(session, active).await?;
            match admin.secrets().remove(&funko, &secret) {
                Ok(()) => {}
                Err(err @ faaso::store::secrets::SecretError::NotFound { .. }) => {
                    return Err(refuse(404, err.to_string()));
                }
                Err(err) => return Err(refuse(500, err.to_string())),
            }
            let location = format!("/admin/secrets?deleted={funko}/{secret}#funko-{funko}");
            redirect(admin, session, 303, &location, Vec::new()).await
        }
        (&Method::GET, ["system"]) => system_page(admin, session, active).await,
        (&Method::POST, ["logout"]) => {
            read_form(session, active).await?;
            admin.ui.sessions.remove(&active.id);
            let gone = set_cookie(COOKIE, "", "/admin", Some(0), request.secure);
            redirect(
                admin,
                session,
                303,
                "/admin/login",
                vec![("Set-Cookie", gone)],
            )
            .await
        }
        (_, ["funkos" | "secrets" | "system" | "logout", ..]) | (_, []) => Err(refuse(
            405,
            format!("{} is not allowed here", request.method),
        )),
        _ => Err(refuse(404, "no such page")),
    }
}

async fn login_page(
    admin: &Admin,
    session: &mut Session,
    request: &Request,
    status: u16,
    error: Option<String>,
    next: &str,
) -> Answer {
    login_page_with(admin, session, request, status, error, next, Vec::new()).await
}

async fn login_page_with(
    admin: &Admin,
    session: &mut Session,
    request: &Request,
    status: u16,
    error: Option<String>,
    next: &str,
    mut headers: Vec<(&'static str, String)>,
) -> Answer {
    let configured = admin.auth.is_configured();
    let status = if configured { status } else { 503 };
    let login_token = token();
    if configured {
        headers.push((
            "Set-Cookie",
            set_cookie(
                LOGIN_COOKIE,
                &login_token,
                "/admin/login",
                Some(3600),
                request.secure,
            ),
        ));
    }
    let html = admin
        .ui
        .pages
        .render(
            "login",
            &Frame {
                title: "Log in",
                nav: "",
                csrf: "",
            },
            json!({
                "not_configured": !configured,
                "error": error,
                "token": login_token,
                "next": next,
            }),
        )
        .map_err(|e| refuse(500, e))?;
    send_html(admin, session, status, html, headers)
        .await
        .map_err(internal)?;
    Ok(status)
}

async fn login(admin: &Admin, session: &mut Session, request: &Request) -> Answer {
    let form = parse_form(&read_small_body(session).await.map_err(from_admin)?);
    let next = safe_next(form.get("next").map(String::as_str));
    if !admin.auth.is_configured() {
        return login_page(admin, session, request, 503, None, &next).await;
    }
    let fresh = match (request.cookie(LOGIN_COOKIE), form.get("token")) {
        (Some(cookie), Some(field)) => !field.is_empty() && tokens_match(cookie, field),
        _ => false,
    };
    if !fresh {
        let error = "The login form expired or came from another site; try again.";
        return login_page(admin, session, request, 403, Some(error.into()), &next).await;
    }
    let password = form.get("password").map(String::as_str).unwrap_or("");
    match admin.auth.check_password(password, request.client).await {
        Verdict::Allowed => {
            let active = admin.ui.sessions.create(Instant::now());
            let lifetime = sessions::LIFETIME.as_secs();
            let headers = vec![
                (
                    "Set-Cookie",
                    set_cookie(COOKIE, &active.id, "/admin", Some(lifetime), request.secure),
                ),
                (
                    "Set-Cookie",
                    set_cookie(LOGIN_COOKIE, "", "/admin/login", Some(0), request.secure),
                ),
            ];
            tracing::info!(target: "faaso::admin", client = %request.client.map_or_else(|| "-".to_string(), |ip| ip.to_string()), "ui login");
            redirect(admin, session, 303, &next, headers).await
        }
        Verdict::Denied => {
            login_page(
                admin,
                session,
                request,
                401,
                Some("Wrong password.".into()),
                &next,
            )
            .await
        }
        Verdict::Limited(seconds) => {
            let error =
                format!("Too many failed logins from this address; try again in {seconds} s.");
            let retry = vec![("Retry-After", seconds.to_string())];
            login_page_with(admin, session, request, 429, Some(error), &next, retry).await
        }
        Verdict::NotConfigured => login_page(admin, session, request, 503, None, &next).await,
    }
}

/// Where to go after logging in: a page of the UI, else the overview.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/admin/")
                && !next.starts_with("/admin/login")
                && !next.contains("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next.to_string()
        }
        _ => "/admin/".to_string(),
    }
}

async fn overview(
    admin: &Admin,
    session: &mut Session,
    request: &Request,
    active: &Active,
) -> Answer {
    let started = Instant::now();
    let ui = &admin.ui;
    let listed = listed_statuses(admin, Vec::new()).await?;
    let waiting = listed.is_none();
    let statuses = listed
        .unwrap_or(Ok(Vec::new()))
        .map_err(|e| refuse(500, e.to_string()))?;
    let data = pages::overview(
        &statuses,
        &|name| ui.recent.summary(name),
        ui.metrics_on,
        waiting,
    );
    let html = if request.query("part").as_deref() == Some("funkos") {
        ui.pages
            .render_part("funkos", &data)
            .map_err(|e| refuse(500, e))?
    } else {
        render(admin, "overview", "Funkos", "funkos", active, data)?
    };
    let timing = format!("render;dur={:.2}", started.elapsed().as_secs_f64() * 1000.0);
    send_html(admin, session, 200, html, vec![("Server-Timing", timing)])
        .await
        .map_err(internal)?;
    Ok(200)
}

/// The status of the named funkos (every funko when `names` is empty), as `faaso status` makes
/// it, from discovery's last lists and the saved scales; the files are read off the worker
/// thread that carries traffic. `None` before discovery's first sync.
async fn listed_statuses(
    admin: &Admin,
    names: Vec<String>,
) -> std::result::Result<
    Option<std::result::Result<Vec<FunkoStatus>, faaso::engine::LifecycleError>>,
    Refusal,
> {
    let Some(listing) = admin.ui.discovery.listing.load_full() else {
        return Ok(None);
    };
    let state = StateDir::new(&admin.settings.state_dir);
    let network = admin.settings.network.clone();
    tokio::task::spawn_blocking(move || {
        faaso::engine::status::statuses(
            &names,
            &listing.containers,
            &listing.images,
            &state,
            &network,
        )
    })
    .await
    .map(Some)
    .map_err(|e| refuse(500, e.to_string()))
}

/// One funko's status from discovery's last lists; 404 when Docker has nothing of it.
async fn status_of(admin: &Admin, name: &str) -> std::result::Result<FunkoStatus, Refusal> {
    let name = valid(name)?;
    let Some(found) = listed_statuses(admin, vec![name.clone()]).await? else {
        return Err(refuse(503, "waiting for the first sync with Docker"));
    };
    match found {
        Ok(mut statuses) if !statuses.is_empty() => Ok(statuses.remove(0)),
        Ok(_) | Err(faaso::engine::LifecycleError::Unknown { .. }) => Err(refuse(
            404,
            format!("funko {name} does not exist (no image, no containers, no saved scale)"),
        )),
        Err(err) => Err(refuse(500, err.to_string())),
    }
}

async fn funko_page(admin: &Admin, session: &mut Session, active: &Active, name: &str) -> Answer {
    let status = status_of(admin, name).await?;
    let mut data = pages::funko(&status);
    // Its recent async calls; a store that cannot be read leaves the list out.
    data["keys"] = match admin.key_store().list(&status.name) {
        Ok(keys) => pages::keys(&keys),
        Err(err) => {
            tracing::warn!(funko = %status.name, error = %err, "cannot list keys");
            Value::Null
        }
    };
    data["calls"] = match admin.calls.list(&status.name, 20).await {
        Ok(calls) => pages::calls(&calls),
        Err(err) => {
            tracing::warn!(funko = %status.name, error = %err, "cannot list async calls");
            Value::Null
        }
    };
    let html = render(admin, "funko", &status.name, "funkos", active, data)?;
    send_html(admin, session, 200, html, Vec::new())
        .await
        .map_err(internal)?;
    Ok(200)
}

/// Makes a key from the funko page's form and shows it, once.
async fn add_key(
    admin: &Admin,
    session: &mut Session,
    active: &Active,
    name: &str,
    form: &HashMap<String, String>,
) -> Answer {
    let status = status_of(admin, name).await?;
    let key_name = form.get("name").map(|n| n.trim()).filter(|n| !n.is_empty());
    let made = admin
        .key_store()
        .add(&status.name, key_name)
        .map_err(|e| from_admin(crate::admin::request::key_reject(e)))?;
    admin.keys.reload();
    let html = render(
        admin,
        "key",
        "New key",
        "funkos",
        active,
        json!({ "funko": status.name, "name": made.name, "key": made.key }),
    )?;
    send_html(admin, session, 201, html, Vec::new())
        .await
        .map_err(internal)?;
    Ok(201)
}

/// The forms of a funko's page: scale, deploy, stop, purge; progress streams as HTML.
async fn operate(
    admin: &Admin,
    session: &mut Session,
    active: &Active,
    name: &str,
    operation: &str,
    form: &HashMap<String, String>,
) -> Answer {
    let name = valid(name)?;
    let lifecycle = admin.lifecycle().await.map_err(from_admin)?;
    // Stop is scale 0; every form but an upscale needs the funko to exist.
    let (operation, heading) = match operation {
        "scale" => {
            let scale = form
                .get("scale")
                .and_then(|s| s.trim().parse::<u32>().ok())
                .filter(|s| *s <= MAX_SCALE)
                .ok_or_else(|| {
                    refuse(
                        400,
                        format!("scale: expected a number of instances from 0 to {MAX_SCALE}"),
                    )
                })?;
            (
                Operation::Scale(scale),
                format!("Scaling {name} to {scale}"),
            )
        }
        "stop" => (Operation::Scale(0), format!("Stopping {name}")),
        "deploy" => (Operation::Deploy, format!("Deploying {name}")),
        "purge" => {
            let typed = form.get("confirm").map(|s| s.trim()).unwrap_or("");
            if typed != name {
                return Err(refuse(
                    400,
                    format!(
                        "to purge {name}, type its name exactly in the confirmation field; nothing was removed"
                    ),
                ));
            }
            (Operation::Purge, format!("Purging {name}"))
        }
        _ => return Err(refuse(404, format!("no operation {operation:?}"))),
    };
    if !matches!(operation, Operation::Scale(n) if n > 0) {
        require_funko(&lifecycle, &name).await?;
    }
    let (back, back_label) = match operation {
        Operation::Purge => ("/admin/".to_string(), "Back to the overview".to_string()),
        _ => (format!("/admin/funkos/{name}"), format!("Back to {name}")),
    };
    let page = render(
        admin,
        "operation",
        &heading,
        "funkos",
        active,
        json!({ "name": name, "heading": heading, "back": back, "back_label": back_label }),
    )?;
    let (head, tail) = page
        .split_once(STREAM_MARK)
        .ok_or_else(|| refuse(500, "the operation page has no place for progress"))?;
    let encoding = HtmlProgress {
        head: head.to_string(),
        tail: tail.to_string(),
    };
    stream_encoded(
        session,
        &encoding,
        WhenClientLeaves::Finish,
        move |mut out| async move {
            let mut log = |line| out.log(line);
            match operation {
                Operation::Scale(scale) => lifecycle.scale(&name, scale, &mut log).await,
                Operation::Deploy => lifecycle.deploy(&name, &mut log).await.map(|deployed| {
                    log(deployed.summary(&name));
                }),
                Operation::Purge => lifecycle.purge(&name, &mut log).await,
            }
            .map_err(|e| e.to_string())
        },
    )
    .await
    .map_err(internal)?;
    Ok(200)
}

/// What a funko page's form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Scale(u32),
    Deploy,
    Purge,
}

/// Progress of an operation as the lines of an HTML page.
struct HtmlProgress {
    head: String,
    tail: String,
}

impl Encoding for HtmlProgress {
    fn content_type(&self) -> &'static str {
        "text/html; charset=utf-8"
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        SECURITY_HEADERS
            .iter()
            .map(|(name, value)| (*name, value.to_string()))
            .collect()
    }

    fn start(&self) -> Vec<u8> {
        self.head.as_bytes().to_vec()
    }

    fn line(&self, line: &Line) -> Vec<u8> {
        match line {
            Line::Plain(text) => format!("<li>{}</li>\n", escape(text)).into_bytes(),
            Line::Log { instance, line } => format!(
                "<li><span class=\"inst\">{}</span> {}</li>\n",
                escape(instance),
                escape(line)
            )
            .into_bytes(),
        }
    }

    fn end(&self, outcome: std::result::Result<(), String>) -> Vec<u8> {
        let result = match outcome {
            Ok(()) => {
                "<p class=\"outcome ok\" id=\"outcome\" role=\"status\">Done.</p>".to_string()
            }
            Err(message) => format!(
                "<p class=\"outcome bad\" id=\"outcome\" role=\"alert\">Failed: {}</p>",
                escape(&message)
            ),
        };
        format!("</ol>\n{result}\n{}", self.tail).into_bytes()
    }
}

fn escape(text: &str) -> String {
    handlebars::html_escape(text)
}

async fn logs_page(
    admin: &Admin,
    session: &mut Session,
    request: &Request,
    active: &Active,
    name: &str,
) -> Answer {
    let name = valid(name)?;
    let tail = tail_of(request)?;
    let lifecycle = admin.lifecycle().await.map_err(from_admin)?;
    let mut lines = Vec::new();
    lifecycle
        .logs(&name, false, Some(tail), &mut |line| {
            lines.push(json!({ "instance": short_instance(&line.instance), "line": line.line }));
        })
        .await
        .map_err(lifecycle_refusal)?;
    let tails: Vec<Value> = [10, 100, 1000, MAX_TAIL]
        .iter()
        .chain(std::iter::once(&tail).filter(|t| ![10, 100, 1000, MAX_TAIL].contains(*t)))
        .map(|value| json!({ "value": value, "selected": *value == tail }))
        .collect();
    let html = render(
        admin,
        "logs",
        &format!("Logs of {name}"),
        "funkos",
        active,
        json!({
            "name": name,
            "tail": tail,
            "tails": tails,
            "line_count": lines.len(),
            "lines": lines,
        }),
    )?;
    send_html(admin, session, 200, html, Vec::new())
        .await
        .map_err(internal)?;
    Ok(200)
}

async fn logs_stream(
    admin: &Admin,
    session: &mut Session,
    request: &Request,
    name: &str,
) -> Answer {
    let name = valid(name)?;
    let tail = tail_of(request)?;
    let follow = request.query("follow").as_deref() != Some("0");
    let lifecycle = admin.lifecycle().await.map_err(from_admin)?;
    require_funko(&lifecycle, &name).await?;
    stream_operation(session, WhenClientLeaves::Stop, move |mut out| async move {
        lifecycle
            .logs(&name, follow, Some(tail), &mut |line| {
                out.send(Line::Log {
                    instance: short_instance(&line.instance).to_string(),
                    line: line.line,
                })
            })
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(internal)?;
    Ok(200)
}

/// An instance's suffix, which tells instances of one funko apart.
fn short_instance(instance: &str) -> &str {
    instance
        .rsplit_once('-')
        .map_or(instance, |(_, suffix)| suffix)
}

fn tail_of(request: &Request) -> std::result::Result<u32, Refusal> {
    match request.query("tail").as_deref() {
        None | Some("") => Ok(DEFAULT_TAIL),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_TAIL)
            .ok_or_else(|| {
                refuse(
                    400,
                    format!("tail: expected a number of lines up to {MAX_TAIL}, got {text:?}"),
                )
            }),
    }
}

async fn secrets_page(
    admin: &Admin,
    session: &mut Session,
    request: &Request,
    active: &Active,
) -> Answer {
    // The secrets folder is read off the worker thread that carries traffic.
    let secrets = admin.secrets();
    let listed = tokio::task::spawn_blocking(move || secrets.list(None))
        .await
        .map_err(|e| refuse(500, e.to_string()))?
        .map_err(|e| refuse(500, e.to_string()))?;
    let mut known: Vec<String> = match listed_statuses(admin, Vec::new()).await? {
        Some(Ok(statuses)) => statuses.into_iter().map(|s| s.name).collect(),
        _ => Vec::new(),
    };
    for (funko, _) in &listed {
        if !known.contains(funko) {
            known.push(funko.clone());
        }
    }
    known.sort();
    let funkos: Vec<Value> = known
        .iter()
        .map(|funko| {
            let secrets = listed
                .iter()
                .find(|(f, _)| f == funko)
                .map(|(_, names)| names.clone())
                .unwrap_or_default();
            json!({ "name": funko, "secrets": secrets })
        })
        .collect();
    let notice = match (request.query("saved"), request.query("deleted")) {
        (Some(saved), _) => Some(format!("Saved the secret {saved}.")),
        (_, Some(deleted)) => Some(format!("Deleted the secret {deleted}.")),
        _ => None,
    };
    let html = render(
        admin,
        "secrets",
        "Secrets",
        "secrets",
        active,
        json!({
            "funkos": funkos,
            "known": known,
            "notice": notice,
            "funko": request.query("funko").unwrap_or_default(),
        }),
    )?;
    send_html(admin, session, 200, html, Vec::new())
        .await
        .map_err(internal)?;
    Ok(200)
}

async fn add_secret(
    admin: &Admin,
    session: &mut Session,
    form: &HashMap<String, String>,
) -> Answer {
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or("");
    let (funko, secret) = secret_names(field("funko"), field("secret"))?;
    let value = form.get("value").map(String::as_str).unwrap_or("");
    if value.is_empty() {
        return Err(refuse(400, format!("secret {secret}: the value is empty")));
    }
    admin
        .lifecycle()
        .await
        .map_err(from_admin)?
        .add_secret(&funko, &secret, value.as_bytes())
        .await
        .map_err(|e| refuse(500, e.to_string()))?;
    let location = format!("/admin/secrets?saved={funko}/{secret}#funko-{funko}");
    redirect(admin, session, 303, &location, Vec::new()).await
}

fn secret_names(funko: &str, secret: &str) -> std::result::Result<(String, String), Refusal> {
    let funko = valid(funko)?;
    faaso::store::secrets::validate_secret_name(secret).map_err(|e| refuse(400, e.to_string()))?;
    Ok((funko, secret.to_string()))
}

async fn system_page(admin: &Admin, session: &mut Session, active: &Active) -> Answer {
    let ui = &admin.ui;
    let (docker, docker_error) = match docker_version(admin).await {
        Ok(version) => (version, None),
        Err(err) => (Value::Null, Some(err)),
    };
    let view = &ui.discovery;
    let last_sync = view
        .listing
        .load()
        .as_ref()
        .map_or("not yet".to_string(), |listing| pages::ago(listing.at));
    let last_error = view
        .last_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|(at, error)| format!("{error} ({})", pages::ago(*at)));
    let table = ui.table.load();
    use std::sync::atomic::Ordering::Relaxed;
    let config: Vec<Value> = ui
        .config
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    let html = render(
        admin,
        "system",
        "System",
        "system",
        active,
        json!({
            "uptime": faaso::engine::status::human_age(ui.started.elapsed().as_secs() as i64),
            "started": format_time(ui.started_at),
            "sessions": ui.sessions.len(),
            "docker": docker,
            "docker_error": docker_error,
            "discovery": {
                "connected": view.connected.load(Relaxed),
                "last_sync": last_sync,
                "syncs": view.syncs.load(Relaxed),
                "events": view.events.load(Relaxed),
                "errors": view.errors.load(Relaxed),
                "last_error": last_error,
                "funkos": table.len(),
                "instances": table.instances().count(),
            },
            "config": config,
        }),
    )?;
    send_html(admin, session, 200, html, Vec::new())
        .await
        .map_err(internal)?;
    Ok(200)
}

async fn docker_version(admin: &Admin) -> std::result::Result<Value, String> {
    let docker = admin.docker().await.map_err(|e| e.message)?;
    let version = tokio::time::timeout(Duration::from_secs(3), docker.version())
        .await
        .map_err(|_| "the Docker engine did not answer within 3 s".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(json!({
        "version": version.version.unwrap_or_default(),
        "api": version.api_version.unwrap_or_default(),
        "os": version.os.unwrap_or_default(),
        "arch": version.arch.unwrap_or_default(),
        "kernel": version.kernel_version.unwrap_or_default(),
    }))
}

/// A time as UTC text, `2026-12-02 17:04:05 UTC`.
fn format_time(at: SystemTime) -> String {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The calendar date of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn render(
    admin: &Admin,
    page: &str,
    title: &str,
    nav: &str,
    active: &Active,
    data: Value,
) -> std::result::Result<String, Refusal> {
    admin
        .ui
        .pages
        .render(
            page,
            &Frame {
                title,
                nav,
                csrf: &active.csrf,
            },
            data,
        )
        .map_err(|e| refuse(500, e))
}

/// Reads a form and checks its CSRF token against the session's.
async fn read_form(
    session: &mut Session,
    active: &Active,
) -> std::result::Result<HashMap<String, String>, Refusal> {
    let form = parse_form(&read_small_body(session).await.map_err(from_admin)?);
    match form.get("csrf") {
        Some(token) if tokens_match(&active.csrf, token) => Ok(form),
        _ => Err(refuse(
            403,
            "this form is stale or came from another page (its CSRF token is missing or wrong): reload the page and try again",
        )),
    }
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn valid(name: &str) -> std::result::Result<String, Refusal> {
    crate::admin::request::valid(name).map_err(from_admin)
}

async fn require_funko(
    lifecycle: &faaso::engine::Lifecycle,
    name: &str,
) -> std::result::Result<(), Refusal> {
    crate::admin::request::require_funko(lifecycle, name)
        .await
        .map_err(from_admin)
}

fn lifecycle_refusal(err: faaso::engine::LifecycleError) -> Refusal {
    from_admin(crate::admin::request::lifecycle_reject(err))
}

fn from_admin(reject: crate::admin::request::Reject) -> Refusal {
    refuse(reject.status, reject.message)
}

fn internal(err: Box<pingora::Error>) -> Refusal {
    refuse(500, err.to_string())
}

async fn send_html(
    admin: &Admin,
    session: &mut Session,
    status: u16,
    html: String,
    extra: Vec<(&'static str, String)>,
) -> Result<()> {
    send(
        admin,
        session,
        status,
        "text/html; charset=utf-8",
        Bytes::from(html),
        "no-store",
        extra,
    )
    .await
}

async fn send(
    admin: &Admin,
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Bytes,
    cache: &str,
    extra: Vec<(&'static str, String)>,
) -> Result<()> {
    let mut header = ResponseHeader::build(status, Some(4 + SECURITY_HEADERS.len() + extra.len()))?;
    header.insert_header("Content-Type", content_type)?;
    header.insert_header("Content-Length", body.len().to_string())?;
    header.insert_header("Cache-Control", cache)?;
    for (name, value) in SECURITY_HEADERS {
        header.insert_header(*name, *value)?;
    }
    for (name, value) in extra {
        header.append_header(name, value)?;
    }
    if let Some(hsts) = admin
        .ui
        .hsts
        .as_ref()
        .filter(|_| crate::tls::is_tls(session))
    {
        header.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

async fn redirect(
    admin: &Admin,
    session: &mut Session,
    status: u16,
    location: &str,
    mut extra: Vec<(&'static str, String)>,
) -> Answer {
    extra.push(("Location", location.to_string()));
    send(
        admin,
        session,
        status,
        "text/plain; charset=utf-8",
        Bytes::new(),
        "no-store",
        extra,
    )
    .await
    .map_err(internal)?;
    Ok(status)
}

/// The stylesheet or script: the URL carries a digest of the content, so it may be kept.
async fn asset(
    admin: &Admin,
    session: &mut Session,
    content_type: &str,
    text: &'static str,
) -> Answer {
    send(
        admin,
        session,
        200,
        content_type,
        Bytes::from_static(text.as_bytes()),
        "public, max-age=31536000, immutable",
        Vec::new(),
    )
    .await
    .map_err(internal)?;
    Ok(200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pages_of_the_ui_are_places_to_go_after_login() {
        assert_eq!(
            safe_next(Some("/admin/funkos/hello")),
            "/admin/funkos/hello"
        );
        assert_eq!(safe_next(Some("/admin/?part=x")), "/admin/?part=x");
        for bad in [
            "https://evil.example/",
            "//evil.example/admin/",
            "/admin//evil",
            "/admin/\\evil",
            "/admin/login",
            "/other",
            "/admin/x\ny",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin/", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin/");
    }

    #[test]
    fn progress_lines_are_escaped_html() {
        let progress = HtmlProgress {
            head: "<ol>".into(),
            tail: "</main>".into(),
        };
        assert_eq!(
            progress.line(&Line::Plain("<b>&".into())),
            b"<li>&lt;b&gt;&amp;</li>\n"
        );
        let end = String::from_utf8(progress.end(Err("no <image>".into()))).unwrap();
        assert!(end.contains("Failed: no &lt;image&gt;"), "{end}");
        assert!(end.ends_with("</main>"));
    }

    #[test]
    fn times_read_as_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_230_000);
        assert_eq!(format_time(at), "2026-12-02 16:46:40 UTC");
        assert_eq!(
            format_time(SystemTime::UNIX_EPOCH),
            "1970-01-01 00:00:00 UTC"
        );
    }

    #[test]
    fn forms_decode() {
        let form = parse_form(b"csrf=a%2Bb&value=x+y%3D&empty=");
        assert_eq!(form["csrf"], "a+b");
        assert_eq!(form["value"], "x y=");
        assert_eq!(form["empty"], "");
    }
}
