package example;

import com.amazonaws.services.lambda.runtime.Context;

/** Handlers named Class::method, with no interface: strings, numbers, POJOs. */
public class Plain {
    public String upper(String text) {
        return text.toUpperCase();
    }

    public int twice(Integer n) {
        return n * 2;
    }

    public Greeting greet(Person person, Context context) {
        Greeting g = new Greeting();
        g.setMessage("Hello, " + person.getName() + " (" + person.getAge() + ")");
        g.setRequestId(context.getAwsRequestId());
        return g;
    }

    public void fails(Object event) {
        throw new IllegalStateException("it went wrong in Java");
    }

    public String sleeps(java.util.Map<String, Integer> event) throws InterruptedException {
        Thread.sleep(event.get("ms"));
        return "slept";
    }

    /** Native memory, page by page, until the platform's limit stops it. */
    public String hog(Object event) throws Exception {
        java.lang.reflect.Field f = Class.forName("sun.misc.Unsafe").getDeclaredField("theUnsafe");
        f.setAccessible(true);
        sun.misc.Unsafe unsafe = (sun.misc.Unsafe) f.get(null);
        long total = 0;
        while (true) {
            long size = 16L << 20;
            long at = unsafe.allocateMemory(size);
            unsafe.setMemory(at, size, (byte) 1);
            total += size;
            if (total > (64L << 30)) {
                return "never reached";
            }
        }
    }

    public static class Person {
        private String name;
        private int age;

        public String getName() { return name; }
        public void setName(String name) { this.name = name; }
        public int getAge() { return age; }
        public void setAge(int age) { this.age = age; }
    }

    public static class Greeting {
        private String message;
        private String requestId;

        public String getMessage() { return message; }
        public void setMessage(String message) { this.message = message; }
        public String getRequestId() { return requestId; }
        public void setRequestId(String requestId) { this.requestId = requestId; }
    }
}
