//! The web admin UI in a real headless Chromium against a gateway and Docker: login and its
//! limit, the overview, scale, deploy, stop, live logs, secrets, CSRF, purge. Each page is
//! saved as a screenshot under `target/ui-screenshots/`.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use faaso_tests::browser::Browser;
use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_until};
use faaso_tests::{require_docker, testfunko, unique_name};

const PASSWORD: &str = "correct horse battery";

/// Containers of a funko (any state), registered for cleanup; with their image ids.
async fn instances(docker: &Docker, cleanup: &Cleanup, funko: &str) -> Vec<String> {
    let containers = faaso::engine::docker::list_instances(docker, funko)
        .await
        .unwrap();
    for c in &containers {
        if let Some(id) = &c.id {
            cleanup.container(id.clone());
        }
    }
    containers
        .iter()
        .filter_map(|c| c.image_id.clone())
        .collect()
}

async fn image_id(docker: &Docker, tag: &str) -> Option<String> {
    docker.inspect_image(tag).await.ok().and_then(|i| i.id)
}

/// A form's CSRF token in a page's HTML.
fn csrf_in(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Fills in the login form as a browser would (its cookie and token) and posts `password`.
async fn post_login(
    http: &reqwest::Client,
    gateway: &GatewayProcess,
    password: &str,
) -> reqwest::Response {
    let url = format!("{}/admin/login", gateway.url);
    let page = http.get(&url).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let marker = r#"name="token" value=""#;
    let start = html.find(marker).unwrap() + marker.len();
    let token = html[start..].split('"').next().unwrap().to_string();
    http.post(&url)
        .header("Cookie", cookie)
        .form(&[("token", token.as_str()), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// Logs in with plain HTTP (a second browser, as far as the gateway can tell): its session
/// cookie and CSRF token.
async fn second_session(gateway: &GatewayProcess) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let done = post_login(&http, gateway, PASSWORD).await;
    assert_eq!(done.status().as_u16(), 303);
    let session = faaso_tests::http::session_cookie(&done);
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    let session = session.split(';').next().unwrap().to_string();
    let page = http
        .get(format!("{}/admin/", gateway.url))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (session, csrf_in(&page))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ui_in_a_real_browser() {
    let test = "ui::the_admin_ui_in_a_real_browser";
    let docker = require_docker!();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let cleanup = Cleanup::new();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let gateway =
        GatewayProcess::start_in(Arc::clone(&dir), &format!("password: {PASSWORD}\n")).await;
    let faaso = Faaso::in_dir(dir.path());
    let name = unique_name("ui");
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(&docker, &tag, "ENV TESTFUNKO_VERSION=1").await;
    cleanup.image(tag.clone());
    faaso.ok(&["up", &name]);
    instances(&docker, &cleanup, &name).await;
    let admin = format!("{}/admin", gateway.url);

    // Log in: a page sends the browser to the form; a wrong password is refused.
    browser.goto(&format!("{admin}/")).await;
    assert!(
        browser.url().await.contains("/admin/login"),
        "{}",
        browser.url().await
    );
    browser.screenshot("login").await;
    browser.fill("#password", "wrong").await;
    browser.click_to_new_page("button[type=submit]").await;
    browser
        .wait_for_text("#login-error", "Wrong password", Duration::from_secs(10))
        .await;
    // The keyboard alone: the password field has the focus, Enter submits.
    // The new page's autofocus may apply a moment after the error text shows.
    let started = std::time::Instant::now();
    loop {
        let focused = browser
            .eval("return document.activeElement && document.activeElement.id")
            .await;
        if focused == serde_json::json!("password") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the password field has no focus: {focused}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let enter = char::from(fantoccini::key::Key::Enter);
    browser
        .fill("#password", &format!("{PASSWORD}{enter}"))
        .await;
    browser
        .wait_for_text("h1", "Funkos", Duration::from_secs(10))
        .await;

    // The overview lists the funko with its instance, and fills in its traffic by itself.
    let row = format!("tr[data-funko='{name}']");
    let count = browser.text(&format!("{row} .count")).await;
    assert_eq!(count, "1 running");
    browser.eval("window.notReloaded = true; return 1").await;
    let http = client();
    // Steady traffic, one request in ten answered 503 by the funko.
    let load = {
        let http = http.clone();
        let base = format!("{}/funko/{name}", gateway.url);
        tokio::spawn(async move {
            for i in 0..600u32 {
                let path = if i % 10 == 9 { "status/503" } else { "ping" };
                let _ = http.get(format!("{base}/{path}")).send().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = std::time::Instant::now();
    let (rate, errors, p99) = loop {
        let cells: Vec<String> = [3, 4, 5]
            .iter()
            .map(|n| format!("{row} td:nth-of-type({n})"))
            .collect();
        let (rate, errors, p99) = (
            browser.text(&cells[0]).await,
            browser.text(&cells[1]).await,
            browser.text(&cells[2]).await,
        );
        if rate.parse::<f64>().is_ok_and(|r| r > 0.0) && errors.ends_with('%') && errors != "0 %" {
            break (rate, errors, p99);
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the overview showed no traffic within 40 s: {rate} req/s, {errors} 5xx, p99 {p99}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("overview: {rate} req/s, {errors} 5xx, p99 {p99}");
    assert!(p99.ends_with("ms") || p99.ends_with(" s"), "{p99}");
    // Let the sparkline draw a few points before the screenshot.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        browser.eval("return window.notReloaded === true").await,
        serde_json::json!(true),
        "the overview refreshed itself without a reload"
    );
    browser.element(&format!("{row} svg.spark polyline")).await;
    let overview = browser.screenshot("overview").await;
    load.abort();
    // At a phone's width nothing sticks out sideways but the scrollable table.
    browser.resize(390, 844).await;
    let overflow = browser
        .eval("return document.body.scrollWidth <= window.innerWidth")
        .await;
    browser.screenshot("overview-phone").await;
    browser.resize(1280, 900).await;
    assert_eq!(overflow, serde_json::json!(true), "the page fits a phone");

    // Scale to 2 from the funko's page.
    browser.click(&format!("{row} th a")).await;
    browser
        .wait_for_text("h1", &name, Duration::from_secs(10))
        .await;
    browser.screenshot("funko").await;
    browser.fill("#scale", "2").await;
    browser.click("form[action$='/scale'] button").await;
    browser
        .wait_for_text("#outcome", "Done", Duration::from_secs(60))
        .await;
    browser.screenshot("operation").await;
    assert_eq!(instances(&docker, &cleanup, &name).await.len(), 2);

    // Deploy a new image from the page: every instance runs it.
    testfunko::variant(&docker, &tag, "ENV TESTFUNKO_VERSION=2").await;
    let new_image = image_id(&docker, &tag).await.unwrap();
    browser.goto(&format!("{admin}/funkos/{name}")).await;
    browser.click("#deploy").await;
    browser
        .wait_for_text("#outcome", "Done", Duration::from_secs(90))
        .await;
    let images = instances(&docker, &cleanup, &name).await;
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(
        images.iter().all(|i| *i == new_image),
        "{images:?} vs {new_image}"
    );

    // The logs page shows a line printed after it was opened; pause holds lines back.
    browser.goto(&format!("{admin}/funkos/{name}/logs")).await;
    browser
        .wait_for_text("#log-status", "Following", Duration::from_secs(10))
        .await;
    let word = faaso::conventions::random_suffix();
    http.get(format!("{}/funko/{name}/say/{word}", gateway.url))
        .send()
        .await
        .unwrap();
    browser
        .wait_for_text(
            "#log",
            &format!("testfunko says {word}"),
            Duration::from_secs(15),
        )
        .await;
    browser.click("#pause").await;
    let held = faaso::conventions::random_suffix();
    http.get(format!("{}/funko/{name}/say/{held}", gateway.url))
        .send()
        .await
        .unwrap();
    browser
        .wait_for_text("#log-status", "1 new lines held", Duration::from_secs(15))
        .await;
    assert!(!browser.text("#log").await.contains(&held));
    browser.click("#pause").await;
    browser
        .wait_for_text(
            "#log",
            &format!("testfunko says {held}"),
            Duration::from_secs(5),
        )
        .await;
    browser.screenshot("logs").await;

    // Add a secret: the file exists with mode 0600; its value is in no page. Then delete it.
    let value = format!("v4lue-{}", faaso::conventions::random_suffix());
    browser.goto(&format!("{admin}/secrets?funko={name}")).await;
    browser.fill("#secret", "db_password").await;
    browser.fill("#value", &value).await;
    browser.click("form[action='/admin/secrets'] button").await;
    browser
        .wait_for_text("#notice", "Saved the secret", Duration::from_secs(10))
        .await;
    let file = dir.path().join("secrets").join(&name).join("db_password");
    let meta = std::fs::metadata(&file).expect("the secret's file exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), value);
    browser.screenshot("secrets").await;
    for page in [
        "/".to_string(),
        format!("/funkos/{name}"),
        "/secrets".to_string(),
        "/system".to_string(),
    ] {
        browser.goto(&format!("{admin}{page}")).await;
        assert!(
            !browser.source().await.contains(&value),
            "{page} shows the value"
        );
    }
    browser.screenshot("system").await;
    browser.goto(&format!("{admin}/secrets")).await;
    browser
        .click(&format!("#funko-{name} li[data-secret='db_password'] a"))
        .await;
    browser.click("#confirm-delete").await;
    browser
        .wait_for_text("#notice", "Deleted the secret", Duration::from_secs(10))
        .await;
    assert!(!file.exists(), "the secret's file is gone");

    // Stop: scale 0.
    browser.goto(&format!("{admin}/funkos/{name}")).await;
    browser.click("#stop").await;
    browser
        .wait_for_text("#outcome", "Done", Duration::from_secs(60))
        .await;
    assert!(instances(&docker, &cleanup, &name).await.is_empty());

    // A state-changing POST without the token, or with another session's, is refused.
    let session = browser.cookie("faaso_session").await.expect("a session");
    let (_, other_csrf) = second_session(&gateway).await;
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for csrf in [None, Some(other_csrf.as_str())] {
        let mut form = vec![("scale", "3")];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let refused = raw
            .post(format!("{admin}/funkos/{name}/scale"))
            .header("Cookie", format!("faaso_session={session}"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 403, "csrf {csrf:?}");
        assert!(refused.text().await.unwrap().contains("CSRF"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        instances(&docker, &cleanup, &name).await.is_empty(),
        "nothing was scaled"
    );

    // Purge asks for the typed name: a wrong one removes nothing, the right one everything.
    browser.goto(&format!("{admin}/funkos/{name}")).await;
    browser.fill("#confirm", "not-the-name").await;
    browser.click("form[action$='/purge'] button").await;
    browser
        .wait_for_text("#message", "type its name exactly", Duration::from_secs(10))
        .await;
    assert!(
        image_id(&docker, &tag).await.is_some(),
        "nothing was purged"
    );
    browser.goto(&format!("{admin}/funkos/{name}")).await;
    browser.fill("#confirm", &name).await;
    browser.click("form[action$='/purge'] button").await;
    browser
        .wait_for_text("#outcome", "Done", Duration::from_secs(60))
        .await;
    assert_eq!(image_id(&docker, &tag).await, None, "the image is gone");
    wait_until(
        "the overview no longer lists the funko",
        Duration::from_secs(10),
        || {
            let browser = &browser;
            let admin = &admin;
            let row = &row;
            async move {
                browser.goto(&format!("{admin}/")).await;
                browser
                    .client
                    .find(fantoccini::Locator::Css(row))
                    .await
                    .is_err()
            }
        },
    )
    .await;

    // Log out; then ten wrong passwords in a minute, and the eleventh try is limited.
    browser.click("form.logout button").await;
    browser
        .wait_for_text("h1", "Log in", Duration::from_secs(10))
        .await;
    for _ in 0..10 {
        browser.fill("#password", "guess").await;
        browser.click_to_new_page("button[type=submit]").await;
        browser
            .wait_for_text("#login-error", "Wrong password", Duration::from_secs(10))
            .await;
    }
    browser.fill("#password", PASSWORD).await;
    browser.click_to_new_page("button[type=submit]").await;
    browser
        .wait_for_text(
            "#login-error",
            "Too many failed logins",
            Duration::from_secs(10),
        )
        .await;
    println!("screenshots: {}", overview.parent().unwrap().display());
}

/// Without a password the UI says how to set one.
#[tokio::test]
async fn without_a_password_the_login_page_says_how_to_set_one() {
    let _docker = require_docker!();
    let gateway = GatewayProcess::start("").await;
    let response = client()
        .get(format!("{}/admin/login", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(
        html.contains("FAASO_PASSWORD") && html.contains("--hash-password"),
        "{html}"
    );
    assert!(!html.contains("<form method=\"post\" action=\"/admin/login\""));
}

/// Failed logins through the form and through the API count against one limit per address: the
/// eleventh try in a minute, whichever way, gets 429 with `Retry-After`.
#[tokio::test]
async fn the_login_form_and_the_api_share_one_limit() {
    let _docker = require_docker!();
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..5 {
        let api = http
            .get(format!("{}/admin/api/version", gateway.url))
            .basic_auth("admin", Some("guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status().as_u16(), 401);
        assert_eq!(
            post_login(&http, &gateway, "guess").await.status().as_u16(),
            401
        );
    }
    let limited = post_login(&http, &gateway, PASSWORD).await;
    assert_eq!(limited.status().as_u16(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        limited
            .text()
            .await
            .unwrap()
            .contains("Too many failed logins")
    );
    // A login form without its cookie (posted from elsewhere) is refused before any password check.
    let forged = http
        .post(format!("{}/admin/login", gateway.url))
        .form(&[("token", "0"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
}
