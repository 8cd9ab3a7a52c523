//! GraphiQL, served entirely by the node: the page at `GET /graphql` (for a
//! browser) and the production builds of React, ReactDOM and GraphiQL,
//! embedded in the binary (see docs/decisions/0008-graphiql-assets.md).
//!
//! People paste bearer tokens for children's records into this page, so it
//! runs no code Registre does not ship, and says so to the browser: its
//! Content-Security-Policy allows scripts, styles, fonts and connections from
//! the node's own origin only. The start-up script is a served file, not an
//! inline one, so scripts need no 'unsafe-inline'.

use warp::{
    http::{header, HeaderValue, StatusCode},
    reply::Response,
    Reply,
};

/// The URL segment under /graphiql/ that names this set of assets: it changes
/// with them, so browsers may cache each file for good.
pub const ASSETS_VERSION: &str = "3.8.3-r1";

/// GraphiQL needs inline styles (its editors set `style` attributes) and
/// data: fonts and images (inlined in its CSS); nothing else leaves 'self'.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "react.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/graphiql/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/graphiql/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/graphiql/graphiql.min.css"),
    },
    Asset {
        name: "init.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/graphiql/init.js"),
    },
    Asset {
        name: "page.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/graphiql/page.css"),
    },
];

const PAGE: &str = include_str!("../assets/graphiql/graphiql.html");

fn secure(response: Response) -> Response {
    secure_with(response, CONTENT_SECURITY_POLICY)
}

/// The headers of every page the node serves to a browser: its policy, no
/// content sniffing, no referrer (the pages' URLs may carry a token).
pub(crate) fn secure_with(mut response: Response, policy: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The page, with its security headers.
pub fn page() -> Response {
    let html = PAGE.replace("VERSION", ASSETS_VERSION);
    let mut response = warp::reply::html(html).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(response)
}

/// One embedded asset by version and file name, or `None` (a 404).
pub fn asset(version: &str, name: &str) -> Option<Response> {
    if version != ASSETS_VERSION {
        return None;
    }
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    let mut response = Response::new(asset.bytes.into());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Some(secure(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_embedded() {
        let html = PAGE.replace("VERSION", ASSETS_VERSION);
        let prefix = format!("/graphiql/{ASSETS_VERSION}/");
        let mut named = 0;
        for part in html.split(['"', '\'']) {
            if let Some(name) = part.strip_prefix(&prefix) {
                assert!(asset(ASSETS_VERSION, name).is_some(), "{name}");
                named += 1;
            }
        }
        assert_eq!(named, ASSETS.len());
        assert!(asset("0.0.0", "init.js").is_none());
        assert!(asset(ASSETS_VERSION, "../Cargo.toml").is_none());
    }
}
