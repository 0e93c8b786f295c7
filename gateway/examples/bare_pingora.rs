//! The smallest Pingora proxy: every request to one fixed upstream, no routing, no headers,
//! no metrics, no logs. The benchmark harness runs it beside the gateway to show how much of
//! the gateway's cost is Pingora's own.
//!
//! Run: `cargo run --release -p faaso-gateway --example bare_pingora -- <listen> <upstream>`

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Fixed(String);

#[async_trait]
impl ProxyHttp for Fixed {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.0.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_pingora <listen addr> <upstream addr>");
        std::process::exit(2);
    };
    // The same process settings as the gateway: 2 threads, one runtime per thread.
    let conf = ServerConf {
        threads: 2,
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Fixed(upstream));
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
