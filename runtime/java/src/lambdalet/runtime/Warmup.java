package lambdalet.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The handler of the platform's own run that records a JDK's class-data sharing archive
 * (gateway/execution/java_training.py): what a function's first calls make the runtime do (a map
 * in and out through the RIC's serializer, the logger, stdout, a thrown error), so that the
 * classes all that loads, the JDK's included, come from the archive at every cold start.
 */
public final class Warmup implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    @Override
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        context.getLogger().log("warm-up " + context.getAwsRequestId() + "\n");
        System.out.println("warm-up " + context.getFunctionName());
        if (event.containsKey("fail")) {
            throw new IllegalStateException("warm-up failure");
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("statusCode", 200);
        out.put("body", "ok");
        out.put("echo", event);
        out.put("remaining", context.getRemainingTimeInMillis());
        return out;
    }
}
