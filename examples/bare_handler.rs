//! The baseline of `bench/forward_auth.py`: an HTTP handler on accessd's own
//! stack (tokio, hyper through axum) that answers 200 and does nothing else.
//! It prints `listening on http://ADDRESS` like accessd.

use axum::Router;
use axum::routing::any;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = Router::new().fallback(any(|| async { "" }));
    axum::serve(listener, app).await
}
