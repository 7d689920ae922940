package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.LinkedHashMap;
import java.util.Map;

/** A RequestHandler of maps: the event back, and what the context says. */
public class Hello implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    private static final long LOADED = System.nanoTime();

    @Override
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        LambdaLogger logger = context.getLogger();
        logger.log("logger line for " + context.getAwsRequestId() + "\n");
        System.out.println("stdout line");
        System.err.println("stderr line");
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("echo", event);
        out.put("requestId", context.getAwsRequestId());
        out.put("functionName", context.getFunctionName());
        out.put("version", context.getFunctionVersion());
        out.put("memory", context.getMemoryLimitInMB());
        out.put("arn", context.getInvokedFunctionArn());
        out.put("logGroup", context.getLogGroupName());
        out.put("logStream", context.getLogStreamName());
        out.put("remaining", context.getRemainingTimeInMillis());
        out.put("env", System.getenv("AWS_EXECUTION_ENV"));
        out.put("mine", System.getenv("MY_SETTING"));
        out.put("toolOptions", System.getProperty("lambdalet.sample"));
        out.put("javaVersion", Runtime.version().feature());
        out.put("classLoader", getClass().getClassLoader().getClass().getSimpleName());
        out.put("userDir", System.getProperty("user.dir"));
        out.put("loaded", LOADED != 0);
        return out;
    }
}
