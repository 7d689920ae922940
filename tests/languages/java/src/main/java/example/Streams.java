package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/** A RequestStreamHandler: the raw event bytes in, raw bytes out. */
public class Streams implements RequestStreamHandler {
    @Override
    public void handleRequest(InputStream input, OutputStream output, Context context) throws IOException {
        byte[] event = input.readAllBytes();
        output.write(("{\"length\":" + event.length + ",\"raw\":").getBytes(StandardCharsets.UTF_8));
        output.write(event);
        output.write('}');
    }
}
