//! SCIM says only what `/Schemas` declares: what is stored and returned,
//! PATCH paths, projections and Entra ID's matching filter.

use accessd::domain::IdpId;
use accessd::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Server, TestDb};
use crate::scim::{Scim, provider, scim_error};

crate::on_each_backend!(
    only_declared_attributes_are_stored_and_returned,
    patch_refuses_unknown_and_read_only_paths_and_is_atomic,
    projections_and_entra_matching_filter,
);

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// An Okta-shaped create: a password, a locale, an attribute nobody declares.
fn okta_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": user_name, "password": "Tr0ub4dor&3-not-kept",
        "name": {"givenName": "Ann", "familyName": "Lee", "nickname": "undeclared"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Ann Lee", "locale": "en-US", "preferredLanguage": "en",
        "timezone": "Europe/Paris", "title": "Engineer", "active": true,
        "noSuchAttribute": "dropped",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
    })
}

/// Every attribute of `resource` is declared by `schema` (`id`, `schemas`,
/// `meta` are the common attributes every resource has).
fn assert_declared(resource: &Value, schema: &Value) {
    let declared = |attributes: &Value, name: &str| -> Option<Value> {
        attributes
            .as_array()?
            .iter()
            .find(|a| a["name"].as_str() == Some(name))
            .cloned()
    };
    for (key, value) in resource.as_object().into_iter().flatten() {
        if ["id", "schemas", "meta"].contains(&key.as_str()) {
            continue;
        }
        let attribute = declared(&schema["attributes"], key)
            .unwrap_or_else(|| panic!("{key} is returned but not declared: {resource}"));
        assert_ne!(attribute["returned"], "never", "{key} is never returned");
        let elements: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for element in elements.iter().filter_map(|e| e.as_object()) {
            for sub in element.keys() {
                assert!(
                    declared(&attribute["subAttributes"], sub).is_some(),
                    "{key}.{sub} is returned but not declared"
                );
            }
        }
    }
}

async fn user_schema(scim: &Scim<'_>) -> Value {
    scim.call("GET", &format!("/Schemas/{USER_SCHEMA}"), None)
        .await
        .body
}

async fn only_declared_attributes_are_stored_and_returned(db: TestDb) {
    let server = Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let schema = user_schema(&scim).await;
    let declared: Vec<&str> = schema["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str())
        .collect();
    for name in [
        "locale",
        "preferredLanguage",
        "timezone",
        "title",
        "password",
    ] {
        assert!(declared.contains(&name), "{name} is declared");
    }
    let password = schema["attributes"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["name"] == "password"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (password["returned"].clone(), password["mutability"].clone()),
        (json!("never"), json!("writeOnly"))
    );
    let types = scim.call("GET", "/ResourceTypes/User", None).await;
    assert_eq!(types.body["schemaExtensions"], json!([]));

    let created = scim
        .call("POST", "/Users", Some(okta_user("ann@example.com")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(created.body["locale"], "en-US");
    assert_eq!(created.body["timezone"], "Europe/Paris");
    assert_eq!(
        created.body["name"],
        json!({"givenName": "Ann", "familyName": "Lee"})
    );
    let listed = scim.call("GET", "/Users", None).await;
    let searched = scim
        .call(
            "POST",
            "/Users/.search",
            Some(json!({"filter": "locale eq \"en-US\""})),
        )
        .await;
    assert_eq!(searched.body["totalResults"], 1);
    let fetched = scim.call("GET", &format!("/Users/{id}"), None).await;
    let put = scim
        .call(
            "PUT",
            &format!("/Users/{id}"),
            Some(okta_user("ann@example.com")),
        )
        .await;
    let patched = scim
        .call(
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({"Operations": [{"op": "replace", "value": {"password": "n3w-secret", "title": "Lead"}}]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["title"], "Lead");
    for resource in [
        &created.body,
        &listed.body["Resources"][0],
        &searched.body["Resources"][0],
        &fetched.body,
        &put.body,
        &patched.body,
    ] {
        assert_declared(resource, &schema);
        let text = resource.to_string();
        assert!(
            !text.contains("Tr0ub4dor") && !text.contains("n3w-secret"),
            "the password is never returned: {text}"
        );
        assert!(!text.contains("noSuchAttribute") && !text.contains("R&D"));
    }

    // Nor is it stored.
    let store = Store::connect(&server.database_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let idp = scim.base.rsplit('/').next().and_then(IdpId::parse);
    let stored = match idp {
        Some(idp) => store.find_scim_user(&idp, &id).await.ok().flatten(),
        None => None,
    };
    let stored = stored
        .map(|u| u.resource.to_string())
        .unwrap_or_else(|| panic!("the user is stored"));
    assert!(!stored.contains("Tr0ub4dor") && !stored.contains("n3w-secret"));
    assert!(!stored.contains("noSuchAttribute"));
}

async fn patch_refuses_unknown_and_read_only_paths_and_is_atomic(db: TestDb) {
    let server = Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let created = scim
        .call("POST", "/Users", Some(okta_user("bob@example.com")))
        .await;
    let path = format!("/Users/{}", created.body["id"].as_str().unwrap_or_default());
    let patch = |ops: Value| {
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
        )
    };
    for (ops, scim_type) in [
        (
            json!([{"op": "add", "path": "noSuchAttribute", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "name.nickname", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "meta.created", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "value": {"id": "other"}}]),
            "mutability",
        ),
        // The first operation is fine; the second fails: nothing is saved.
        (
            json!([{"op": "replace", "path": "displayName", "value": "Changed"},
                   {"op": "replace", "path": "noSuchAttribute", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "displayName", "value": "Changed"},
                   {"op": "remove", "path": "emails[type eq \"fax\"]"}]),
            "noTarget",
        ),
    ] {
        let reply = scim.call("PATCH", &path, patch(ops.clone())).await;
        scim_error(&reply, 400, Some(scim_type));
    }
    let after = scim.call("GET", &path, None).await;
    assert_eq!(
        after.body["displayName"], "Ann Lee",
        "a failed PATCH changes nothing"
    );
    assert_eq!(
        after.body["meta"]["version"],
        created.body["meta"]["version"]
    );
    assert!(after.body.get("noSuchAttribute").is_none());

    let group = scim
        .call("POST", "/Groups", Some(json!({"displayName": "G"})))
        .await;
    let group_path = format!("/Groups/{}", group.body["id"].as_str().unwrap_or_default());
    scim_error(
        &scim
            .call(
                "PATCH",
                &group_path,
                patch(json!([{"op": "add", "path": "owner", "value": "x"}])),
            )
            .await,
        400,
        Some("invalidPath"),
    );
}

async fn projections_and_entra_matching_filter(db: TestDb) {
    let server = Server::start(&db).await;
    let (_, scim) = provider(&server).await;
    let created = scim
        .call("POST", "/Users", Some(okta_user("cat@example.com")))
        .await;
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    scim.call(
        "POST",
        "/Users",
        Some(json!({"userName": "dan@example.com",
        "emails": [{"value": "cat@example.com", "type": "home"}]})),
    )
    .await;

    let only_given = scim
        .call(
            "GET",
            &format!("/Users/{id}?attributes=name.givenName"),
            None,
        )
        .await;
    assert_eq!(
        only_given.body,
        json!({"id": id, "schemas": [USER_SCHEMA], "name": {"givenName": "Ann"}})
    );
    let listed = scim
        .call(
            "GET",
            "/Users?attributes=name.givenName,emails.value&count=1",
            None,
        )
        .await;
    assert_eq!(
        listed.body["Resources"][0],
        json!({"id": id, "schemas": [USER_SCHEMA], "name": {"givenName": "Ann"},
               "emails": [{"value": "cat@example.com"}]})
    );
    let without = scim
        .call(
            "POST",
            "/Users/.search",
            Some(json!({"filter": format!("id eq \"{id}\""),
                        "excludedAttributes": ["name.familyName", "emails", "meta", "id"]})),
        )
        .await;
    let first = &without.body["Resources"][0];
    assert_eq!(first["id"], id.as_str(), "id is always returned");
    assert_eq!(first["name"], json!({"givenName": "Ann"}));
    assert!(first.get("emails").is_none() && first.get("meta").is_none());
    assert_eq!(first["userName"], "cat@example.com");

    // Entra ID matches a user by its work e-mail this way.
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "filter",
            "emails[type eq \"work\"].value eq \"cat@example.com\"",
        )
        .finish();
    let matched = scim.call("GET", &format!("/Users?{query}"), None).await;
    assert_eq!(matched.status, StatusCode::OK, "{}", matched.body);
    assert_eq!(
        matched.body["totalResults"], 1,
        "the home e-mail of dan does not match"
    );
    assert_eq!(matched.body["Resources"][0]["id"], id.as_str());
}
