//! The sign-in pages: plain HTML forms that work without JavaScript.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

pub struct Page {
    pub status: StatusCode,
    pub title: String,
    /// Already escaped HTML.
    pub body: String,
    pub cookies: Vec<String>,
    /// Seconds a throttled client should wait, sent as `Retry-After`.
    pub retry_after: Option<i64>,
}

impl Page {
    pub fn new(status: StatusCode, title: &str, body: String) -> Self {
        Self {
            status,
            title: title.to_string(),
            body,
            cookies: Vec::new(),
            retry_after: None,
        }
    }

    pub fn with_cookie(mut self, cookie: String) -> Self {
        self.cookies.push(cookie);
        self
    }

    pub fn with_retry_after(mut self, seconds: i64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>\n\
             body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#1f2328}}\n\
             label{{display:block;margin:1rem 0 .25rem;font-weight:600}}\n\
             input{{width:100%;padding:.6rem;font-size:1rem;box-sizing:border-box}}\n\
             button{{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem}}\n\
             .error{{color:#b42318}}\n</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n",
            title = escape(&self.title),
            body = self.body,
        );
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // `same-origin`, not `no-referrer`: under `no-referrer` browsers send
        // `Origin: null` with the page's own form posts, and the CSRF check
        // refuses an opaque origin. Other origins still get no referrer.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        // No `form-action`: the code form's answer redirects to the
        // application's host, and browsers apply form-action to that redirect.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        for cookie in self.cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

pub fn error_page(status: StatusCode, title: &str, message: &str) -> Page {
    Page::new(
        status,
        title,
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message)),
    )
}

/// Hidden fields every form carries.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

pub fn email_form(
    app_name: &str,
    app_domain: &str,
    redirect_url: &str,
    csrf: &str,
    error: Option<&str>,
) -> String {
    let alert = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    format!(
        "<p>Sign in to <strong>{app}</strong> with a code sent to your e-mail.</p>\n{alert}\
         <form method=\"post\" action=\"/cdn-cgi/access/otp/send\">\n{h1}{h2}{h3}\n\
         <label for=\"email\">E-mail address</label>\n\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required autofocus>\n\
         <button type=\"submit\">Send me a code</button>\n</form>",
        app = escape(app_name),
        h1 = hidden("app", app_domain),
        h2 = hidden("redirect_url", redirect_url),
        h3 = hidden("csrf", csrf),
    )
}

/// One "Sign in with …" link per OpenID provider `(id, name)`, to the start
/// of its sign-in.
pub fn provider_links(
    providers: &[(String, String)],
    app_domain: &str,
    redirect_url: &str,
) -> String {
    let links: String = providers
        .iter()
        .map(|(id, name)| {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("idp", id)
                .append_pair("app", app_domain)
                .append_pair("redirect_url", redirect_url)
                .finish();
            format!(
                "<p><a class=\"provider\" href=\"/cdn-cgi/access/oidc/start?{}\">Sign in with {}</a></p>\n",
                escape(&query),
                escape(name)
            )
        })
        .collect();
    format!("<nav aria-label=\"Identity providers\">\n{links}</nav>")
}

pub fn code_form(email: &str, challenge: &str, csrf: &str, error: Option<&str>) -> String {
    let alert = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    format!(
        "<p>We sent a six-digit code to <strong>{email}</strong>.</p>\n{alert}\
         <form method=\"post\" action=\"/cdn-cgi/access/otp/verify\">\n{h1}{h2}\n\
         <label for=\"code\">Code</label>\n\
         <input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" pattern=\"[0-9]{{6}}\" \
         maxlength=\"6\" autocomplete=\"one-time-code\" required autofocus>\n\
         <button type=\"submit\">Sign in</button>\n</form>",
        email = escape(email),
        h1 = hidden("challenge", challenge),
        h2 = hidden("csrf", csrf),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
