package lambdalet.runtime;

import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Starts AWS's runtime interface client (aws-lambda-java-runtime-interface-client,
 * unmodified) for a java17/java21/java25 function.
 *
 * <p>With LAMBDALET_CONFIG=stdin the function's whole environment arrives first, as one
 * JSON line on fd 0 ({"env": {...}}, gateway/execution/languages.py): it becomes this
 * process's environment, as the RIC and the handler read it with System.getenv, and fd 0
 * is closed. Then the RIC's own entry point runs with the handler named by _HANDLER.
 *
 * <p>The platform's class-data sharing archive for cold starts is recorded from this same start
 * serving a few calls to {@link Warmup} (gateway/execution/java_training.py).
 */
public final class Launcher {
    private static final String RIC_MAIN = "com.amazonaws.services.lambda.runtime.api.client.AWSLambda";

    private Launcher() {}

    public static void main(String[] args) throws Throwable {
        if ("stdin".equals(System.getenv("LAMBDALET_CONFIG"))) {
            Map<String, String> env = Json.object(readLine(System.in)).objectAt("env");
            replaceEnvironment(env);
            new FileInputStream(FileDescriptor.in).close();
            System.setIn(InputStream.nullInputStream());
        }
        String taskRoot = System.getenv("LAMBDA_TASK_ROOT");
        if (taskRoot != null) {
            System.setProperty("user.dir", taskRoot);
        }
        String handler = System.getenv("_HANDLER");
        Method main = Class.forName(RIC_MAIN).getMethod("main", String[].class);
        try {
            main.invoke(null, (Object) new String[] {handler == null ? "" : handler});
        } catch (java.lang.reflect.InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != -1 && b != '\n') {
            out.write(b);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** Makes env this process's environment, as System.getenv and child processes see it. */
    @SuppressWarnings("unchecked")
    private static void replaceEnvironment(Map<String, String> env) throws ReflectiveOperationException {
        Map<String, String> current = System.getenv();
        // System.getenv() is an unmodifiable view of the JDK's own live map.
        Field inner = current.getClass().getDeclaredField("m");
        inner.setAccessible(true);
        Map<String, String> live = (Map<String, String>) inner.get(current);
        live.clear();
        live.putAll(env);
    }

    /** Just enough JSON for the configuration: objects of strings. */
    static final class Json {
        private final String text;
        private int pos;

        private Json(String text) {
            this.text = text;
        }

        static JsonObject object(String text) {
            Json p = new Json(text);
            return p.readObject();
        }

        private void skipSpace() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
        }

        private void expect(char c) {
            skipSpace();
            if (pos >= text.length() || text.charAt(pos) != c) {
                throw new IllegalArgumentException("configuration: expected '" + c + "' at " + pos);
            }
            pos++;
        }

        private JsonObject readObject() {
            JsonObject out = new JsonObject();
            expect('{');
            skipSpace();
            if (text.charAt(pos) == '}') {
                pos++;
                return out;
            }
            while (true) {
                String key = readString();
                expect(':');
                skipSpace();
                if (text.charAt(pos) == '{') {
                    out.objects.put(key, readObject());
                } else {
                    out.put(key, readString());
                }
                skipSpace();
                if (text.charAt(pos) == ',') {
                    pos++;
                    continue;
                }
                expect('}');
                return out;
            }
        }

        private String readString() {
            expect('"');
            StringBuilder out = new StringBuilder();
            while (true) {
                char c = text.charAt(pos++);
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char e = text.charAt(pos++);
                switch (e) {
                    case 'b': out.append('\b'); break;
                    case 'f': out.append('\f'); break;
                    case 'n': out.append('\n'); break;
                    case 'r': out.append('\r'); break;
                    case 't': out.append('\t'); break;
                    case 'u':
                        out.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        pos += 4;
                        break;
                    default: out.append(e);
                }
            }
        }
    }

    static final class JsonObject extends LinkedHashMap<String, String> {
        final Map<String, JsonObject> objects = new LinkedHashMap<>();

        Map<String, String> objectAt(String key) {
            JsonObject o = objects.get(key);
            if (o == null) {
                throw new IllegalArgumentException("configuration: no \"" + key + "\"");
            }
            return o;
        }
    }
}
