//! The client side of the control socket (`api::control`): sends one request to the running server
//! and shows the progress it reports until the job's end.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
};

use serde_json::Value;

use super::progress::ProgressView;
use crate::services::jobs::Job;

/// Sends `request`; answers the finished job's result, or its error.
pub fn ask(mut stream: UnixStream, request: &Value) -> Result<Value, String> {
    writeln!(stream, "{request}").map_err(|e| format!("cannot ask the server: {e}"))?;
    let mut view = ProgressView::new();
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| format!("lost the server's answer: {e}"))?;
        let message: Value =
            serde_json::from_str(&line).map_err(|e| format!("bad answer from the server: {e}"))?;
        if let Some(progress) = message.get("progress") {
            if let Ok(progress) = serde_json::from_value(progress.clone()) {
                view.update(&progress);
            }
        } else if let Some(job) = message.get("job") {
            view.finish();
            let job: Job = serde_json::from_value(job.clone())
                .map_err(|e| format!("bad answer from the server: {e}"))?;
            return match (job.result, job.error) {
                (Some(result), None) => Ok(result),
                (_, error) => Err(error.unwrap_or_else(|| "the job failed".into())),
            };
        } else if let Some(error) = message.get("error").and_then(Value::as_str) {
            view.finish();
            return Err(error.to_owned());
        }
    }
    Err("the server closed the connection before the job ended".into())
}
