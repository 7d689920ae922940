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

    /** What the sandbox lets this process see and do (tests/test_language_core.py). */
    public java.util.Map<String, Object> probe(Object event) throws Exception {
        java.util.Map<String, Object> out = new java.util.LinkedHashMap<>();
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Paths.get("/proc/self/status"))) {
            String[] kv = line.split(":\\s*", 2);
            if (kv.length == 2 && java.util.Set.of("Uid", "CapEff", "Seccomp", "NoNewPrivs").contains(kv[0])) {
                out.put(kv[0], kv[1].trim());
            }
        }
        try {
            java.nio.file.Files.writeString(java.nio.file.Paths.get("/var/task/written"), "x");
            out.put("taskWritable", true);
        } catch (java.io.IOException e) {
            out.put("taskWritable", false);
        }
        java.util.List<String> ifaces = new java.util.ArrayList<>();
        for (java.net.NetworkInterface ni : java.util.Collections.list(java.net.NetworkInterface.getNetworkInterfaces())) {
            ifaces.add(ni.getName());
        }
        out.put("interfaces", ifaces);
        out.put("hostname", java.nio.file.Files.readString(java.nio.file.Paths.get("/proc/sys/kernel/hostname")).trim());
        out.put("etcShadow", java.nio.file.Files.exists(java.nio.file.Paths.get("/etc/shadow")));
        out.put("tmpWritable", new java.io.File("/tmp").canWrite());
        return out;
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
