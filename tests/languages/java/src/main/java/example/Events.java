package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.events.APIGatewayV2HTTPEvent;
import com.amazonaws.services.lambda.runtime.events.APIGatewayV2HTTPResponse;
import com.amazonaws.services.lambda.runtime.events.S3Event;
import com.amazonaws.services.lambda.runtime.events.ScheduledEvent;
import java.util.Map;

/** Handlers of aws-lambda-java-events' classes. */
public class Events {
    /** A function URL's event (payload 2.0) and response. */
    public static class Http implements RequestHandler<APIGatewayV2HTTPEvent, APIGatewayV2HTTPResponse> {
        @Override
        public APIGatewayV2HTTPResponse handleRequest(APIGatewayV2HTTPEvent event, Context context) {
            String body = event.getRequestContext().getHttp().getMethod() + " " + event.getRawPath()
                    + " q=" + event.getRawQueryString() + " body=" + event.getBody();
            return APIGatewayV2HTTPResponse.builder()
                    .withStatusCode(202)
                    .withHeaders(Map.of("x-from", "java", "content-type", "text/plain"))
                    .withBody(body)
                    .build();
        }
    }

    public static class S3 implements RequestHandler<S3Event, String> {
        @Override
        public String handleRequest(S3Event event, Context context) {
            var record = event.getRecords().get(0);
            return record.getEventName() + " " + record.getS3().getBucket().getName() + "/" + record.getS3().getObject().getKey();
        }
    }

    public static class Scheduled implements RequestHandler<ScheduledEvent, String> {
        @Override
        public String handleRequest(ScheduledEvent event, Context context) {
            return event.getDetailType() + " from " + event.getSource() + " " + event.getResources();
        }
    }
}
