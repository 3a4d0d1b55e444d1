//! An HTTP request as the accept loop checks it: the `Host` / `Origin` rule, the body read
//! whole within its size and time limits, and the ids of its calls.

use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use hyper::body::Body as _;
use jsonrpsee::server::{HttpBody, HttpResponse};
use serde_json::value::RawValue;

use super::super::wire::{MAX_BATCH_LEN, MAX_REQUEST_BYTES};
use super::MAX_QUEUED_CALLS;

/// A plain-text HTTP response with `status`, closing the connection.
pub(super) fn refuse(status: hyper::StatusCode, text: &'static str) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// Whether `host` (a `Host` header's host, or an origin's) is a loopback name.
pub(super) fn loopback_host(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| host.rsplit_once(':').map_or(host, |(h, _)| h));
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `Host` / `Origin` rule (module docs): `Err` with the status to refuse with.
pub(super) fn allowed<B>(req: &hyper::Request<B>) -> Result<(), hyper::StatusCode> {
    if req.headers().get_all(hyper::header::HOST).iter().count() > 1 {
        return Err(hyper::StatusCode::BAD_REQUEST);
    }
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
    };
    let host_ok = header(hyper::header::HOST)
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .is_some_and(loopback_host);
    let origin_ok = header(hyper::header::ORIGIN).is_none_or(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .is_some_and(loopback_host)
    });
    if host_ok && origin_ok {
        Ok(())
    } else {
        Err(hyper::StatusCode::FORBIDDEN)
    }
}

/// The calls of a request body: a batch's, or the one call; none if it is not JSON.
pub(super) fn calls_of(body: &[u8]) -> Vec<&RawValue> {
    serde_json::from_slice::<Vec<&RawValue>>(body)
        .or_else(|_| serde_json::from_slice::<&RawValue>(body).map(|c| vec![c]))
        .unwrap_or_default()
}

/// Whether `call` has an id JSON-RPC allows but jsonrpsee would take it for a notification
/// by (an object, an array, a fraction, a number past `u64`): such a request must get an
/// error, not silence.
pub(super) fn has_bad_id(call: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    serde_json::from_str::<Probe<'_>>(call.get()).is_ok_and(|p| {
        p.id.is_some_and(|id| {
            let id = id.get();
            !(id.starts_with('"') || id.parse::<u64>().is_ok())
        })
    })
}

/// Whether a request body holds a call with a bad id ([`has_bad_id`]).
pub(super) fn bad_id(body: &[u8]) -> bool {
    calls_of(body).into_iter().any(has_bad_id)
}

/// A call with a bad id that jsonrpsee hands to the [`Gate`] as a notification: its method
/// and its params as sent, which that notification carries.
pub(super) type Misread = (String, Option<String>);

/// The calls of a WebSocket message with a bad id that jsonrpsee will take for notifications.
pub(super) fn misreads(body: &[u8]) -> Vec<Misread> {
    calls_of(body)
        .into_iter()
        .filter(|c| has_bad_id(c))
        .filter_map(|c| {
            let n: jsonrpsee::types::Notification<'_, Option<&RawValue>> =
                serde_json::from_str(c.get()).ok()?;
            Some((n.method.into_owned(), n.params.map(|p| p.get().to_owned())))
        })
        .collect()
}

/// The most [`Misread`]s a connection keeps until jsonrpsee hands them to the gate: a
/// session's queued messages' worth of full batches.
pub(super) const MAX_MISREADS: usize = MAX_QUEUED_CALLS * MAX_BATCH_LEN as usize;

/// A request body read whole, or the response refusing it.
pub(super) async fn read_body(
    headers: &hyper::HeaderMap,
    mut body: hyper::body::Incoming,
    piece: Duration,
) -> Result<Vec<u8>, HttpResponse> {
    let max = MAX_REQUEST_BYTES as usize;
    let too_large = || {
        refuse(
            hyper::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )
    };
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout(piece, frame).await {
            Err(_) => {
                return Err(refuse(
                    hyper::StatusCode::REQUEST_TIMEOUT,
                    "request timeout",
                ));
            }
            Ok(None) => return Ok(out),
            Ok(Some(Err(_))) => return Err(refuse(hyper::StatusCode::BAD_REQUEST, "bad body")),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > max {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "127.0.0.1:9944",
            "localhost:1",
            "[::1]:80",
            "127.3.2.1",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:9944",
            "10.0.0.1:1",
            "[::2]:1",
            "",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }
}
