//! Random and adversarial input at every parser that reads outside input,
//! through the real server: JSON bodies, query strings, application tokens,
//! Go durations, e-mail addresses and IP rules. Cases come from `proptest`
//! strategies with a fixed seed and count, so CI runs the same cases every
//! time; the SCIM filter and PATCH path parsers have their own properties.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::login::LoginBed;
use crate::common::{ADMIN_TOKEN, Server, TestDb};

crate::on_each_backend!(
    random_json_bodies_are_answered_with_4xx,
    random_query_strings_are_answered_with_4xx,
    forged_application_tokens_are_refused,
    the_largest_inputs_leave_the_server_answering,
    junk_query_parameters_do_not_grow_the_listing_cache,
);

/// Cases per property; each case is one request to the real server.
pub const CASES: usize = 300;

/// `count` values of `strategy`, the same ones on every run.
pub fn samples<S: Strategy>(strategy: S, count: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .unwrap_or_else(|e| panic!("strategy: {e}"))
                .current()
        })
        .collect()
}

/// Words the request bodies and queries of the API use, so random input
/// reaches past the first unknown-field check.
const WORDS: &[&str] = &[
    "name",
    "policies",
    "effect",
    "allow",
    "deny",
    "permission_groups",
    "resources",
    "id",
    "include",
    "exclude",
    "require",
    "decision",
    "email",
    "email_domain",
    "domain",
    "ip",
    "everyone",
    "geo",
    "country_code",
    "group",
    "login_method",
    "session_duration",
    "type",
    "self_hosted",
    "onetimepin",
    "oidc",
    "config",
    "scim_config",
    "condition",
    "request_ip",
    "in",
    "not_in",
    "expires_on",
    "not_before",
    "status",
    "self_hosted_domains",
    "destinations",
    "precedence",
    "page",
    "per_page",
    "direction",
    "search",
    "match",
    "include_expired",
    "client_id",
    "client_secret",
    "auth_url",
    "token_url",
    "certs_url",
    "enabled",
    "non_identity",
    "service_token",
    "any_valid_service_token",
    "token_id",
    "duration",
    "auth_domain",
    "login_design",
    "service_token_inactivity",
    "8760h",
    "team.example.com",
    "com.cloudflare.api.account.*",
    "*",
    "24h",
    "10.0.0.0/8",
    "::ffff:127.0.0.1",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_string),
        any::<String>(),
        "[a-z0-9_.*/:@%-]{0,40}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        word().prop_map(Value::String),
        "[0-9a-f]{32}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// At most a few hundred characters of `value`, for assertion messages.
fn brief(value: &impl std::fmt::Display) -> String {
    value.to_string().chars().take(300).collect()
}

fn is_envelope(body: &Value, status: StatusCode) -> bool {
    body["success"].as_bool() == Some(status.is_success())
}

/// Every body is answered: accepted, or refused with a 4xx envelope; never
/// a 5xx, and the server keeps answering.
async fn random_json_bodies_are_answered_with_4xx(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Fuzz").await;
    let endpoints = [
        ("POST", "/accounts".to_string()),
        ("POST", format!("/accounts/{account}/tokens")),
        ("POST", format!("/accounts/{account}/access/policies")),
        ("POST", format!("/accounts/{account}/access/apps")),
        (
            "POST",
            format!("/accounts/{account}/access/identity_providers"),
        ),
        ("PUT", format!("/accounts/{account}")),
        ("PATCH", format!("/accounts/{account}/access/seats")),
        ("POST", format!("/accounts/{account}/access/service_tokens")),
        ("POST", format!("/accounts/{account}/access/groups")),
        ("POST", format!("/accounts/{account}/access/organizations")),
        ("PUT", format!("/accounts/{account}/access/organizations")),
    ];
    let bodies = samples(json_value(), CASES);
    for (i, body) in bodies.into_iter().enumerate() {
        let (method, path) = &endpoints[i % endpoints.len()];
        let reply = server
            .call(method, path, ADMIN_TOKEN, Some(body.clone()))
            .await;
        assert!(
            reply.status.is_success() || reply.status.is_client_error(),
            "{method} {path} {}: {} {}",
            brief(&body),
            reply.status,
            brief(&reply.body)
        );
        assert!(
            is_envelope(&reply.body, reply.status),
            "{}",
            brief(&reply.body)
        );
    }
    assert_eq!(
        server.get("/accounts", ADMIN_TOKEN).await.status,
        StatusCode::OK
    );
}

fn query_string() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        word(),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("{n}{n}")),
        "%[0-9A-Fa-f]{0,2}",
    ];
    prop::collection::vec((word(), value), 0..8).prop_map(|pairs| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    })
}

async fn random_query_strings_are_answered_with_4xx(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Fuzz").await;
    let listings = [
        "/accounts".to_string(),
        format!("/accounts/{account}/tokens"),
        format!("/accounts/{account}/tokens/permission_groups"),
        format!("/accounts/{account}/access/users"),
        format!("/accounts/{account}/access/apps"),
        format!("/accounts/{account}/access/policies"),
        format!("/accounts/{account}/access/identity_providers"),
        format!("/accounts/{account}/access/service_tokens"),
        format!("/accounts/{account}/access/groups"),
    ];
    for (i, query) in samples(query_string(), CASES).into_iter().enumerate() {
        let path = format!("{}?{query}", listings[i % listings.len()]);
        let reply = server.get(&path, ADMIN_TOKEN).await;
        assert!(
            reply.status.is_success() || reply.status.is_client_error(),
            "{}: {} {}",
            brief(&path),
            reply.status,
            brief(&reply.body)
        );
    }
    assert_eq!(
        server.get("/accounts", ADMIN_TOKEN).await.status,
        StatusCode::OK
    );
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Ways to bend a genuine token: change one character, swap in another
/// header (alg `none`, HMAC keyed with anything, a foreign or hostile
/// `kid`), replace the claims, or send something that is no JWT at all.
fn forged_token(genuine: String) -> impl Strategy<Value = String> {
    let parts: Vec<String> = genuine.split('.').map(str::to_string).collect();
    let (header, claims, signature) = (parts[0].clone(), parts[1].clone(), parts[2].clone());
    let len = genuine.len();
    let flip = (0..len, prop::sample::select(b"AQgw_-.0".to_vec())).prop_filter_map(
        "a different token",
        {
            let genuine = genuine.clone();
            move |(at, byte)| {
                let mut bytes = genuine.clone().into_bytes();
                (bytes[at] != byte).then(|| {
                    bytes[at] = byte;
                    String::from_utf8_lossy(&bytes).into_owned()
                })
            }
        },
    );
    let headers = prop_oneof![
        Just(json!({"alg": "none", "typ": "JWT"})),
        Just(json!({"alg": "HS256", "typ": "JWT"})),
        word().prop_map(|kid| json!({"alg": "RS256", "kid": kid})),
        word().prop_map(|alg| json!({"alg": alg, "kid": "x"})),
        Just(json!({"alg": "RS256", "kid": "../../etc/passwd"})),
        Just(json!({"alg": "RS256", "kid": "' OR '1'='1"})),
    ];
    let swapped_header = {
        let (claims, signature) = (claims.clone(), signature.clone());
        headers.prop_map(move |h| format!("{}.{claims}.{signature}", b64(h.to_string().as_bytes())))
    };
    let swapped_claims = json_value()
        .prop_map(move |c| format!("{header}.{}.{signature}", b64(c.to_string().as_bytes())));
    let unsigned = Just(format!(
        "{}.{claims}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#)
    ));
    prop_oneof![
        flip,
        swapped_header,
        swapped_claims,
        unsigned,
        "[A-Za-z0-9_.-]{0,300}",
        prop::collection::vec("[A-Za-z0-9_-]{0,50}", 0..8).prop_map(|p| p.join(".")),
    ]
}

async fn forged_application_tokens_are_refused(db: TestDb) {
    let bed = LoginBed::start(&db, json!([{"everyone": {}}]), &[]).await;
    let signed_in = bed.sign_in("holder@example.com").await;
    let genuine = signed_in.app_token();
    let identity = format!("{}/cdn-cgi/access/get-identity", bed.server.base);
    let ask = |token: String| {
        bed.server
            .http
            .get(&identity)
            .header("host", &bed.host)
            .header("cf-access-jwt-assertion", token)
            .send()
    };
    let status = |r: Result<reqwest::Response, reqwest::Error>| r.map(|r| r.status()).ok();
    assert_eq!(status(ask(genuine.clone()).await), Some(StatusCode::OK));
    for forged in samples(forged_token(genuine.clone()), CASES) {
        if forged == genuine || reqwest::header::HeaderValue::from_str(&forged).is_err() {
            continue;
        }
        // A changed signature byte may decode to the same bits (base64 padding
        // bits); such a token is the genuine one and may pass.
        let answer = status(ask(forged.clone()).await);
        assert!(
            answer == Some(StatusCode::UNAUTHORIZED)
                || (answer == Some(StatusCode::OK) && same_bits(&forged, &genuine)),
            "{}: {answer:?}",
            brief(&forged)
        );
    }
    assert_eq!(status(ask(genuine).await), Some(StatusCode::OK));
}

/// Whether two tokens decode to the same bytes, segment by segment.
fn same_bits(a: &str, b: &str) -> bool {
    use base64::Engine;
    let decode = |t: &str| -> Option<Vec<Vec<u8>>> {
        t.split('.')
            .map(|part| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .ok()
            })
            .collect()
    };
    decode(a).is_some() && decode(a) == decode(b)
}

/// The deepest and longest inputs each parser allows, and beyond: each is
/// refused with a 4xx, and the same process then answers a normal request.
/// JSON bodies, Go durations, policy rules (e-mail addresses, IP networks),
/// query strings, application tokens, SCIM filters and PATCH paths.
async fn the_largest_inputs_leave_the_server_answering(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Large").await;
    let limit = 1024 * 1024;
    let raw = |method: &str, path: &str, body: String| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_default();
        server
            .http
            .request(method, server.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let tokens = format!("/accounts/{account}/tokens");
    let cases = [
        ("nested arrays", "[".repeat(200_000)),
        ("nested objects", "{\"a\":".repeat(100_000)),
        (
            "body at the limit",
            format!("\"{}\"", "x".repeat(limit - 2)),
        ),
        (
            "body over the limit",
            format!("\"{}\"", "x".repeat(limit + 10)),
        ),
        (
            "long string field",
            json!({"name": "n".repeat(limit - 100), "policies": []}).to_string(),
        ),
        (
            "many policies",
            json!({"name": "n", "policies": vec![json!({"effect": "allow"}); 20_000]}).to_string(),
        ),
    ];
    for (what, body) in cases {
        let status = raw("POST", &tokens, body).await.map(|r| r.status()).ok();
        assert!(
            status.is_some_and(|s| s.is_client_error()),
            "{what}: {status:?}"
        );
    }

    let policies = format!("/accounts/{account}/access/policies");
    let durations = [
        "5000000000000000h5000000000000000h".to_string(),
        "9".repeat(10_000) + "h",
        "1h".repeat(50_000),
    ];
    for duration in durations {
        let reply = server
            .post(
                &policies,
                ADMIN_TOKEN,
                json!({"name": "d", "decision": "allow", "include": [{"everyone": {}}],
                       "session_duration": duration}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{}",
            brief(&reply.body)
        );
    }
    let rules = [
        json!([{"email": {"email": format!("{}@example.com", "a".repeat(100_000))}}]),
        json!([{"ip": {"ip": "1".repeat(100_000)}}]),
        json!([{"ip": {"ip": "::ffff:10.0.0.0/200"}}]),
        json!(vec![json!({"everyone": {}}); 50_000]),
    ];
    for include in rules {
        let reply = server
            .post(
                &policies,
                ADMIN_TOKEN,
                json!({"name": "r", "decision": "allow", "include": include}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{}",
            brief(&reply.body)
        );
    }

    let long_query = format!(
        "/accounts/{account}/access/users?search={}",
        "q".repeat(60_000)
    );
    let status = server.get(&long_query, ADMIN_TOKEN).await.status;
    assert!(status.is_client_error() || status.is_success(), "{status}");

    let identity = server
        .http
        .get(format!("{}/cdn-cgi/access/get-identity", server.base))
        .header("cf-access-jwt-assertion", "e".repeat(60_000))
        .send()
        .await
        .map(|r| r.status())
        .ok();
    assert!(
        identity.is_some_and(|s| s.is_client_error()),
        "{identity:?}"
    );

    // SCIM filters and PATCH paths (their limits are tested one by one in
    // `scim_limits`): stack-deep and endless input through one provider.
    let (_, scim) = crate::scim::provider(&server).await;
    let deep = format!("{}userName pr{}", "(".repeat(5_000), ")".repeat(5_000));
    let long = vec!["userName pr"; 20_000].join(" and ");
    for filter in [&deep, &long] {
        let search = scim
            .call("POST", "/Users/.search", Some(json!({"filter": filter})))
            .await;
        assert_eq!(
            search.status,
            StatusCode::BAD_REQUEST,
            "{}",
            brief(&search.body)
        );
    }
    let user = scim
        .call(
            "POST",
            "/Users",
            Some(json!({"userName": "deep@example.com"})),
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", brief(&user.body));
    let user_path = format!("/Users/{}", user.body["id"].as_str().unwrap_or_default());
    let path = format!("{}value pr{}", "emails[".repeat(2_000), "]".repeat(2_000));
    let patch = scim
        .call(
            "PATCH",
            &user_path,
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "remove", "path": path}]}),
            ),
        )
        .await;
    assert_eq!(
        patch.status,
        StatusCode::BAD_REQUEST,
        "{}",
        brief(&patch.body)
    );
    assert_eq!(
        scim.call("GET", &user_path, None).await.status,
        StatusCode::OK
    );

    assert_eq!(
        server.get("/accounts", ADMIN_TOKEN).await.status,
        StatusCode::OK
    );
    let again = server.create_account("Still here").await;
    assert!(!again.is_empty());
}

/// Each first page of a listing pins a snapshot for the pages after it.
/// Thousands of first pages that differ only in junk parameters, each
/// carrying 30 KiB of it, must not make the server hold on to them.
async fn junk_query_parameters_do_not_grow_the_listing_cache(db: TestDb) {
    let server = Server::start(&db).await;
    let account = server.create_account("Cache").await;
    let users = server.url(&format!("/accounts/{account}/access/users"));
    let junk = "j".repeat(30 * 1024);
    let before = server.resident_kib();
    for round in 0..750 {
        let requests = (0..8)
            .map(|i| {
                server
                    .http
                    .get(format!("{users}?x{round}_{i}={junk}"))
                    .bearer_auth(ADMIN_TOKEN)
            })
            .collect();
        for reply in crate::common::burst(requests).await {
            assert_eq!(reply.status, StatusCode::OK, "{}", brief(&reply.body));
        }
    }
    let grown_mib = server.resident_kib().saturating_sub(before) / 1024;
    // 6,000 listings of 30 KiB each would be 175 MiB if they were kept.
    assert!(grown_mib < 48, "the server grew by {grown_mib} MiB");
}
