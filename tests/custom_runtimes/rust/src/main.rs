// A provided.al2023 bootstrap on lambda_runtime (crates.io), unmodified.
// The function's Handler setting picks the handler: echo (the event back),
// context (what the Lambda context says), error (a returned error), and
// sleep (echo after {"ms": N} milliseconds).
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}

async fn context(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let ctx = event.context;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    println!("context handler ran");
    Ok(json!({
        "request_id": ctx.request_id,
        "arn": ctx.invoked_function_arn,
        "deadline_ms": ctx.deadline,
        "remaining_ms": ctx.deadline.saturating_sub(now),
        "function": ctx.env_config.function_name,
        "memory_mb": ctx.env_config.memory,
        "version": ctx.env_config.version,
        "log_stream": ctx.env_config.log_stream,
        "log_group": ctx.env_config.log_group,
    }))
}

async fn fail(event: LambdaEvent<Value>) -> Result<Value, Error> {
    eprintln!("error handler about to fail");
    Err(format!("it went wrong: {}", event.payload).into())
}

async fn sleep(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let ms = event.payload.get("ms").and_then(Value::as_u64).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json!({ "slept_ms": ms }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    match std::env::var("_HANDLER").unwrap_or_default().as_str() {
        "context" => lambda_runtime::run(service_fn(context)).await,
        "error" => lambda_runtime::run(service_fn(fail)).await,
        "sleep" => lambda_runtime::run(service_fn(sleep)).await,
        _ => lambda_runtime::run(service_fn(echo)).await,
    }
}
