//! One attempt of an async call: the funko is found and reached as a request through the
//! proxy would be (the routing snapshot, the wake of a funko at zero, its in-flight gate, the
//! balancer), then the request is sent to the chosen instance and its whole answer read.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::record::{Answer, CallId, Request};
use crate::SharedRoutes;
use crate::http::errors::chain as error_chain;
use crate::routing::balancer::{self, Tried};
use crate::routing::wake::Wakes;

/// Largest answer kept for a callback; a larger one fails the attempt (502).
pub const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// What an attempt came to.
#[derive(Debug)]
pub enum Attempt {
    /// The funko answered (any status).
    Answered(Answer),
    /// No answer: the status that stands for it (502, 503, 504) and why.
    NoAnswer { status: u16, error: String },
    /// The funko is not in the routing table: nothing to retry.
    NoFunko,
}

impl Attempt {
    /// Whether another attempt may do better: a 5xx, a 429, or no answer.
    pub fn retryable(&self) -> bool {
        match self {
            Attempt::Answered(answer) => answer.status >= 500 || answer.status == 429,
            Attempt::NoAnswer { .. } => true,
            Attempt::NoFunko => false,
        }
    }

    /// The status recorded for it.
    pub fn status(&self) -> u16 {
        match self {
            Attempt::Answered(answer) => answer.status,
            Attempt::NoAnswer { status, .. } => *status,
            Attempt::NoFunko => 404,
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            Attempt::Answered(_) => None,
            Attempt::NoAnswer { error, .. } => Some(error.clone()),
            Attempt::NoFunko => Some("no such funko".to_string()),
        }
    }
}

/// Runs attempts and delivers callbacks; shared by every call.
pub struct Runner {
    pub table: SharedRoutes,
    pub wakes: Arc<Wakes>,
    /// For instances (addressed by IP on the funkos' network).
    pub client: reqwest::Client,
    /// Where callbacks may go, and the client that keeps to it.
    pub reach: super::callback::Reach,
    pub callbacks: reqwest::Client,
}

impl Runner {
    pub fn new(table: SharedRoutes, wakes: Arc<Wakes>, reach: super::callback::Reach) -> Runner {
        Runner {
            table,
            wakes,
            client: Runner::client(),
            callbacks: reach.client(),
            reach,
        }
    }

    /// `funko`'s settings from the routing snapshot (the defaults for a funko it lacks).
    pub fn settings(&self, funko: &str) -> faaso::settings::Settings {
        self.table
            .load()
            .get(funko)
            .map(|f| f.settings.clone())
            .unwrap_or_default()
    }

    /// An HTTP client for instances: no proxy from the environment, pooled connections.
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    }

    /// One attempt of call `id` to `funko`, bounded by `timeout` (the wait for an instance
    /// and a slot included).
    pub async fn attempt(
        &self,
        funko: &str,
        id: CallId,
        request: &Request,
        body: Bytes,
        timeout: Duration,
    ) -> Attempt {
        let started = std::time::Instant::now();
        let attempt = match tokio::time::timeout(timeout, self.run(funko, id, request, body)).await
        {
            Ok(attempt) => attempt,
            Err(_) => Attempt::NoAnswer {
                status: 504,
                error: format!(
                    "no answer within async.timeout ({})",
                    faaso::units::format_duration(timeout)
                ),
            },
        };
        // One line per attempt, as the access log has one per request.
        tracing::info!(
            target: "faaso::calls",
            call_id = %id,
            funko,
            method = %request.method,
            path = %request.target,
            source = %request.source,
            status = attempt.status(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            error = attempt.error().unwrap_or_default(),
            "attempt"
        );
        attempt
    }

    async fn run(&self, name: &str, id: CallId, request: &Request, body: Bytes) -> Attempt {
        let Some(mut funko) = self.table.load().get(name).cloned() else {
            return Attempt::NoFunko;
        };
        if !balancer::any_available(&funko.instances) {
            if !funko.wakes_on_request() {
                return Attempt::NoAnswer {
                    status: 503,
                    error: "no healthy instance".to_string(),
                };
            }
            if let Err(err) = self.wakes.wake(&funko.name).await {
                return Attempt::NoAnswer {
                    status: 503,
                    error: err.to_string(),
                };
            }
            match self.table.load().get(name).cloned() {
                Some(current) => funko = current,
                None => return Attempt::NoFunko,
            }
        }
        // A slot as a request through the proxy takes one: under the funko's in-flight gate
        // when it has one, else on the instance the balancer picks; in a canary, the release
        // is drawn as for a request (never sticky: a call has no client address).
        let release = funko.split(fastrand::u8(..100)).map(|(release, _)| release);
        let skip = |funko: &crate::routing::table::Funko<_>| match (release, funko.canary) {
            (Some(release), Some(split)) => split.others(release, funko.instances.len()),
            _ => Tried::default(),
        };
        let (funko, index, _slot) = match funko.gate.clone() {
            Some(gate) => {
                let admitted = gate
                    .admit(|| self.table.load().get(name).cloned(), skip, |_| {})
                    .await;
                match admitted {
                    Ok((current, admitted)) => (current, admitted.index, Slot::Gate(admitted)),
                    Err(refused) => {
                        return Attempt::NoAnswer {
                            status: match refused {
                                crate::routing::gate::Refused::QueueTimeout => 429,
                                crate::routing::gate::Refused::NoInstance => 503,
                            },
                            error: "no free slot under limits.max_inflight".to_string(),
                        };
                    }
                }
            }
            None => {
                let Some(index) = balancer::pick(&funko.instances, skip(&funko)) else {
                    return Attempt::NoAnswer {
                        status: 503,
                        error: "no healthy instance".to_string(),
                    };
                };
                let in_flight = funko.instances[index].state.start_request();
                (funko, index, Slot::Plain(in_flight))
            }
        };
        let instance = &funko.instances[index];
        let url = format!("http://{}{}", instance.addr, request.target);
        let method = match reqwest::Method::from_bytes(request.method.as_bytes()) {
            Ok(method) => method,
            Err(_) => {
                return Attempt::NoAnswer {
                    status: 400,
                    error: format!("method {:?} cannot be sent", request.method),
                };
            }
        };
        let mut outgoing = self.client.request(method, &url).body(body);
        for (name, value) in &request.headers {
            outgoing = outgoing.header(name.as_str(), value.as_str());
        }
        outgoing = outgoing
            .header("X-Call-Id", id.to_string())
            .header("X-Forwarded-Prefix", format!("/funko/{name}"));
        let response = match outgoing.send().await {
            Ok(response) => response,
            Err(err) => {
                return Attempt::NoAnswer {
                    status: 502,
                    error: format!("{}: {}", instance.name, error_chain(&err)),
                };
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match read_bounded(response, MAX_ANSWER).await {
            Ok(body) => Attempt::Answered(Answer {
                status,
                content_type,
                body,
            }),
            Err(error) => Attempt::NoAnswer {
                status: 502,
                error: format!("{}: {error}", instance.name),
            },
        }
    }
}

/// The slot an attempt holds until it ends.
enum Slot {
    Gate(#[allow(dead_code)] crate::routing::gate::Admitted),
    Plain(#[allow(dead_code)] crate::routing::instance::InFlight),
}

/// A response's whole body, refused beyond `limit` bytes.
pub async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
