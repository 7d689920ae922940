// A provided.al2023 bootstrap on aws-lambda-go, unmodified. The function's
// Handler setting picks the handler: echo (the event back), context (what
// the Lambda context and environment say), error (a returned error), panic,
// sleep (an answer after {"ms": N} milliseconds), url (a function URL's
// request, answered in its response shape) and hello (the benchmark's).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

func echo(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
	return event, nil
}

func describe(ctx context.Context, event json.RawMessage) (map[string]any, error) {
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	env := map[string]string{}
	for _, k := range []string{"_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_LAMBDA_RUNTIME_API",
		"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
		"AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "TZ", "AWS_EXECUTION_ENV"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	fmt.Println("context handler ran")
	return map[string]any{
		"request_id":   lc.AwsRequestID,
		"arn":          lc.InvokedFunctionArn,
		"deadline_ms":  deadline.UnixMilli(),
		"function":     lambdacontext.FunctionName,
		"version":      lambdacontext.FunctionVersion,
		"memory_mb":    lambdacontext.MemoryLimitInMB,
		"log_group":    lambdacontext.LogGroupName,
		"log_stream":   lambdacontext.LogStreamName,
		"env":          env,
		"event_length": len(event),
	}, nil
}

type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

func fail(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
	fmt.Fprintln(os.Stderr, "error handler about to fail")
	return nil, failure{"it went wrong: " + string(event)}
}

func boom(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
	panic(errors.New("deliberate panic"))
}

func sleep(ctx context.Context, event struct {
	Ms int `json:"ms"`
}) (map[string]int, error) {
	time.Sleep(time.Duration(event.Ms) * time.Millisecond)
	return map[string]int{"slept_ms": event.Ms}, nil
}

// url answers a function URL request through aws-lambda-go's own event types.
func url(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	return events.LambdaFunctionURLResponse{
		StatusCode: 201,
		Headers:    map[string]string{"Content-Type": "text/plain", "X-From": "aws-lambda-go"},
		Body:       fmt.Sprintf("%s %s?%s body=%s", req.RequestContext.HTTP.Method, req.RawPath, req.RawQueryString, req.Body),
	}, nil
}

// hello is the benchmark's function: a function URL answered with 200 "hello".
func hello(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	return events.LambdaFunctionURLResponse{StatusCode: 200, Body: "hello"}, nil
}

func main() {
	switch os.Getenv("_HANDLER") {
	case "context":
		lambda.Start(describe)
	case "error":
		lambda.Start(fail)
	case "panic":
		lambda.Start(boom)
	case "sleep":
		lambda.Start(sleep)
	case "url":
		lambda.Start(url)
	case "hello":
		lambda.Start(hello)
	default:
		lambda.Start(echo)
	}
}
