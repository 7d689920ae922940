// Lambdalet's runtime host for C# functions (dotnet8) on Mono.
//
// It speaks the Runtime API like AWS's Amazon.Lambda.RuntimeSupport: loads
// the handler named Assembly::Namespace.Class::Method from /var/task, then
// asks for events and answers them. Handlers take (input), (input,
// ILambdaContext), (ILambdaContext) or nothing, and return void, a value,
// Task or Task<T>; System.IO.Stream in and out is passed raw, any other type
// goes through the ILambdaSerializer named by [LambdaSerializer] on the
// method or the assembly. Console output and ILambdaLogger become records in
// AWS's .NET formats (TEXT: time, request id, level, message; JSON when
// AWS_LAMBDA_LOG_FORMAT is JSON); errors come back as {errorType,
// errorMessage, stackTrace, cause}.
//
// With LAMBDALET_CONFIG=stdin the function's whole environment arrives first
// on fd 0, as one JSON line {"env": {...}} (gateway/execution/languages.py).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Threading.Tasks;
using Amazon.Lambda.Core;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace Lambdalet.Runtime
{
    internal sealed class LambdaException : Exception
    {
        public LambdaException(string message) : base(message) { }
    }

    /// <summary>The Runtime API over one keep-alive connection, raw HTTP/1.1.</summary>
    internal sealed class RuntimeApi
    {
        private const string Api = "/2018-06-01/runtime";
        private readonly string _host;
        private readonly int _port;
        private NetworkStream _stream;
        private readonly byte[] _buffer = new byte[65536];
        private int _start, _end;

        public RuntimeApi(string address)
        {
            int colon = address.LastIndexOf(':');
            _host = address.Substring(0, colon);
            _port = int.Parse(address.Substring(colon + 1), CultureInfo.InvariantCulture);
        }

        private NetworkStream Stream
        {
            get
            {
                if (_stream == null)
                {
                    var client = new TcpClient(_host, _port) { NoDelay = true };
                    _stream = client.GetStream();
                }
                return _stream;
            }
        }

        public sealed class Reply
        {
            public int Status;
            public Dictionary<string, string> Headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            public byte[] Body;
        }

        private void Send(string head, byte[] body)
        {
            byte[] h = Encoding.ASCII.GetBytes(head);
            var all = new byte[h.Length + (body == null ? 0 : body.Length)];
            Buffer.BlockCopy(h, 0, all, 0, h.Length);
            if (body != null) Buffer.BlockCopy(body, 0, all, h.Length, body.Length);
            Stream.Write(all, 0, all.Length);
        }

        private bool Fill()
        {
            if (_start == _end) { _start = _end = 0; }
            if (_end == _buffer.Length)
            {
                throw new IOException("reply head too long");
            }
            int n = Stream.Read(_buffer, _end, _buffer.Length - _end);
            if (n <= 0) return false;
            _end += n;
            return true;
        }

        private Reply Read()
        {
            int headEnd;
            while ((headEnd = IndexOfHeadEnd()) < 0)
            {
                if (!Fill()) throw new IOException("the Runtime API closed the connection");
            }
            string[] lines = Encoding.ASCII.GetString(_buffer, _start, headEnd - _start).Split(new[] { "\r\n" }, StringSplitOptions.None);
            var reply = new Reply { Status = int.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture) };
            for (int i = 1; i < lines.Length; i++)
            {
                int colon = lines[i].IndexOf(':');
                if (colon > 0) reply.Headers[lines[i].Substring(0, colon).Trim()] = lines[i].Substring(colon + 1).Trim();
            }
            _start = headEnd + 4;
            string lengthText;
            int length = reply.Headers.TryGetValue("Content-Length", out lengthText) ? int.Parse(lengthText, CultureInfo.InvariantCulture) : 0;
            var body = new byte[length];
            int got = 0;
            while (got < length)
            {
                if (_start == _end && !Fill()) throw new IOException("the Runtime API closed the connection");
                int take = Math.Min(length - got, _end - _start);
                Buffer.BlockCopy(_buffer, _start, body, got, take);
                _start += take;
                got += take;
            }
            reply.Body = body;
            return reply;
        }

        private int IndexOfHeadEnd()
        {
            for (int i = _start; i + 3 < _end; i++)
            {
                if (_buffer[i] == '\r' && _buffer[i + 1] == '\n' && _buffer[i + 2] == '\r' && _buffer[i + 3] == '\n') return i;
            }
            return -1;
        }

        public Reply Next()
        {
            Send("GET " + Api + "/invocation/next HTTP/1.1\r\nHost: " + _host + "\r\n\r\n", null);
            var reply = Read();
            if (reply.Status != 200) throw new IOException("next: " + reply.Status);
            return reply;
        }

        private void Post(string path, byte[] body, string errorType)
        {
            string head = "POST " + path + " HTTP/1.1\r\nHost: " + _host + "\r\nContent-Type: application/json\r\n" +
                (errorType == null ? "" : "Lambda-Runtime-Function-Error-Type: " + errorType.Replace("\r", " ").Replace("\n", " ") + "\r\n") +
                "Content-Length: " + body.Length + "\r\n\r\n";
            Send(head, body);
            Read();
        }

        public void Respond(string id, byte[] body) { Post(Api + "/invocation/" + Uri.EscapeDataString(id) + "/response", body, null); }
        public void Fail(string id, string errorType, byte[] body) { Post(Api + "/invocation/" + Uri.EscapeDataString(id) + "/error", body, errorType); }
        public void FailInit(string errorType, byte[] body) { Post(Api + "/init/error", body, errorType); }
    }

    /// <summary>Console output and ILambdaLogger as AWS's .NET runtime writes them.</summary>
    internal sealed class LogWriter : TextWriter
    {
        private static readonly string[] Levels = { "trce", "dbug", "info", "warn", "fail", "crit" };
        private static readonly string[] JsonLevels = { "Trace", "Debug", "Information", "Warning", "Error", "Critical" };
        private readonly Stream _out;
        private readonly StringBuilder _line = new StringBuilder();
        private readonly LogLevel _level;
        private readonly object _lock;
        public static bool Json;
        public static LogLevel Threshold = LogLevel.Trace;
        public static string RequestId;

        public LogWriter(Stream output, LogLevel level, object sharedLock)
        {
            _out = output;
            _level = level;
            _lock = sharedLock;
        }

        public override Encoding Encoding { get { return Encoding.UTF8; } }

        public override void Write(char value)
        {
            lock (_lock)
            {
                if (value == '\n') { Emit(_level, _line.ToString()); _line.Clear(); }
                else _line.Append(value);
            }
        }

        public override void Write(string value)
        {
            if (value == null) return;
            lock (_lock)
            {
                int start = 0;
                for (int i = 0; i < value.Length; i++)
                {
                    if (value[i] == '\n')
                    {
                        _line.Append(value, start, i - start);
                        Emit(_level, _line.ToString());
                        _line.Clear();
                        start = i + 1;
                    }
                }
                _line.Append(value, start, value.Length - start);
            }
        }

        public override void Flush()
        {
            lock (_lock)
            {
                if (_line.Length > 0) { Emit(_level, _line.ToString()); _line.Clear(); }
            }
        }

        public void Record(LogLevel level, string message)
        {
            lock (_lock) { Emit(level, message); }
        }

        private void Emit(LogLevel level, string message)
        {
            if (level < Threshold) return;
            string time = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
            string text;
            if (Json)
            {
                var record = new JObject { ["timestamp"] = time, ["level"] = JsonLevels[(int)level], ["requestId"] = RequestId, ["message"] = message };
                text = record.ToString(Formatting.None) + "\n";
            }
            else
            {
                text = time + "\t" + (RequestId ?? "") + "\t" + Levels[(int)level] + "\t" + message + "\n";
            }
            byte[] bytes = Encoding.UTF8.GetBytes(text);
            _out.Write(bytes, 0, bytes.Length);
            _out.Flush();
        }
    }

    internal sealed class Logger : ILambdaLogger
    {
        private readonly LogWriter _writer;
        public Logger(LogWriter writer) { _writer = writer; }
        public void Log(string message) { _writer.Record(LogLevel.Information, message); }
        public void LogLine(string message) { _writer.Record(LogLevel.Information, message); }
        public void Log(string level, string message)
        {
            LogLevel parsed;
            _writer.Record(Enum.TryParse(level, true, out parsed) ? parsed : LogLevel.Information, message);
        }
        public void Log(LogLevel level, string message) { _writer.Record(level, message); }
        public void LogTrace(string message) { _writer.Record(LogLevel.Trace, message); }
        public void LogDebug(string message) { _writer.Record(LogLevel.Debug, message); }
        public void LogInformation(string message) { _writer.Record(LogLevel.Information, message); }
        public void LogWarning(string message) { _writer.Record(LogLevel.Warning, message); }
        public void LogError(string message) { _writer.Record(LogLevel.Error, message); }
        public void LogCritical(string message) { _writer.Record(LogLevel.Critical, message); }
    }

    internal sealed class Context : ILambdaContext
    {
        private readonly long _deadlineMs;
        public Context(RuntimeApi.Reply next, ILambdaLogger logger)
        {
            string value;
            AwsRequestId = next.Headers.TryGetValue("Lambda-Runtime-Aws-Request-Id", out value) ? value : "";
            InvokedFunctionArn = next.Headers.TryGetValue("Lambda-Runtime-Invoked-Function-Arn", out value) ? value : "";
            _deadlineMs = next.Headers.TryGetValue("Lambda-Runtime-Deadline-Ms", out value) ? long.Parse(value, CultureInfo.InvariantCulture) : 0;
            Logger = logger;
            FunctionName = Environment.GetEnvironmentVariable("AWS_LAMBDA_FUNCTION_NAME");
            FunctionVersion = Environment.GetEnvironmentVariable("AWS_LAMBDA_FUNCTION_VERSION");
            LogGroupName = Environment.GetEnvironmentVariable("AWS_LAMBDA_LOG_GROUP_NAME");
            LogStreamName = Environment.GetEnvironmentVariable("AWS_LAMBDA_LOG_STREAM_NAME");
            int memory;
            MemoryLimitInMB = int.TryParse(Environment.GetEnvironmentVariable("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), out memory) ? memory : 128;
        }

        public string AwsRequestId { get; private set; }
        public IClientContext ClientContext { get { return null; } }
        public string FunctionName { get; private set; }
        public string FunctionVersion { get; private set; }
        public ICognitoIdentity Identity { get { return null; } }
        public string InvokedFunctionArn { get; private set; }
        public ILambdaLogger Logger { get; private set; }
        public string LogGroupName { get; private set; }
        public string LogStreamName { get; private set; }
        public int MemoryLimitInMB { get; private set; }
        public TimeSpan RemainingTime
        {
            get { return TimeSpan.FromMilliseconds(_deadlineMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()); }
        }
    }

    /// <summary>The handler, found by name, and how to call it.</summary>
    internal sealed class Handler
    {
        private readonly MethodInfo _method;
        private readonly object _target;
        private readonly Type _input;  // null: no event parameter
        private readonly bool _takesContext;
        private readonly Type _output;  // null: nothing to answer
        private readonly bool _awaits;
        private readonly ILambdaSerializer _serializer;

        public Handler(string taskRoot, string name)
        {
            string[] parts = name.Split(new[] { "::" }, StringSplitOptions.None);
            if (parts.Length != 3 || parts.Any(string.IsNullOrEmpty))
            {
                throw new LambdaException("Invalid lambda function handler: '" + name + "'. The valid format is 'ASSEMBLY::TYPE::METHOD'.");
            }
            Assembly assembly = LoadAssembly(taskRoot, parts[0]);
            Type type = assembly.GetType(parts[1], false);
            if (type == null)
            {
                throw new LambdaException("Unable to load type '" + parts[1] + "' from assembly '" + parts[0] + "'.");
            }
            MethodInfo[] candidates = type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static)
                .Where(m => m.Name == parts[2]).ToArray();
            if (candidates.Length == 0)
            {
                throw new LambdaException("Unable to find method '" + parts[2] + "' in type '" + parts[1] + "' from assembly '" + parts[0] + "'.");
            }
            if (candidates.Length > 1)
            {
                throw new LambdaException("The method '" + parts[2] + "' in type '" + parts[1] + "' has overloads: the handler must name one method.");
            }
            _method = candidates[0];
            ParameterInfo[] ps = _method.GetParameters();
            if (ps.Length > 2 || (ps.Length == 2 && ps[1].ParameterType != typeof(ILambdaContext)))
            {
                throw new LambdaException("Handler '" + name + "' takes (input), (input, ILambdaContext), (ILambdaContext) or nothing.");
            }
            if (ps.Length >= 1 && ps[0].ParameterType == typeof(ILambdaContext)) { _takesContext = true; }
            else if (ps.Length >= 1) { _input = ps[0].ParameterType; _takesContext = ps.Length == 2; }
            Type ret = _method.ReturnType;
            if (ret == typeof(Task)) { _awaits = true; }
            else if (ret.IsGenericType && ret.GetGenericTypeDefinition() == typeof(Task<>)) { _awaits = true; _output = ret.GetGenericArguments()[0]; }
            else if (ret != typeof(void)) { _output = ret; }
            var attr = (LambdaSerializerAttribute)_method.GetCustomAttribute(typeof(LambdaSerializerAttribute))
                ?? (LambdaSerializerAttribute)assembly.GetCustomAttribute(typeof(LambdaSerializerAttribute));
            bool needsSerializer = (_input != null && _input != typeof(Stream)) || (_output != null && !typeof(Stream).IsAssignableFrom(_output));
            if (attr != null)
            {
                _serializer = (ILambdaSerializer)Activator.CreateInstance(attr.SerializerType);
            }
            else if (needsSerializer)
            {
                throw new LambdaException("To use types other than System.IO.Stream as input/output parameters, the assembly or Lambda function should be annotated with Amazon.Lambda.LambdaSerializerAttribute.");
            }
            if (!_method.IsStatic)
            {
                _target = Activator.CreateInstance(type);
            }
        }

        private static Assembly LoadAssembly(string taskRoot, string name)
        {
            string path = Path.Combine(taskRoot, name + ".dll");
            if (!File.Exists(path))
            {
                path = Path.Combine(taskRoot, name + ".exe");
            }
            if (!File.Exists(path))
            {
                throw new LambdaException("Could not find the specified handler assembly with the file name '" + name +
                    ", Culture=neutral, PublicKeyToken=null'. The assembly should be located in the root of your uploaded .zip file.");
            }
            return Assembly.LoadFrom(path);
        }

        /// <summary>The answer's bytes; throws what the handler throws.</summary>
        public byte[] Call(byte[] eventBytes, ILambdaContext context)
        {
            var args = new List<object>();
            if (_input != null)
            {
                var input = new MemoryStream(eventBytes, false);
                args.Add(_input == typeof(Stream) ? input : Deserialize(_input, input));
            }
            if (_takesContext) args.Add(context);
            object result;
            try
            {
                result = _method.Invoke(_target, args.ToArray());
            }
            catch (TargetInvocationException e)
            {
                ExceptionDispatchInfo.Capture(e.InnerException).Throw();
                throw;
            }
            if (_awaits)
            {
                var task = (Task)result;
                try
                {
                    task.Wait();
                }
                catch (AggregateException e)
                {
                    if (e.InnerExceptions.Count == 1) ExceptionDispatchInfo.Capture(e.InnerException).Throw();
                    throw;
                }
                result = _output == null ? null : task.GetType().GetProperty("Result").GetValue(task);
            }
            if (_output == null) return new byte[0];
            var stream = result as Stream;
            if (stream != null)
            {
                var copy = new MemoryStream();
                stream.CopyTo(copy);
                return copy.ToArray();
            }
            var output = new MemoryStream();
            Serialize(_output, result, output);
            return output.ToArray();
        }

        private object Deserialize(Type type, Stream input)
        {
            MethodInfo generic = typeof(ILambdaSerializer).GetMethod("Deserialize").MakeGenericMethod(type);
            try { return generic.Invoke(_serializer, new object[] { input }); }
            catch (TargetInvocationException e) { ExceptionDispatchInfo.Capture(e.InnerException).Throw(); throw; }
        }

        private void Serialize(Type type, object value, Stream output)
        {
            MethodInfo generic = typeof(ILambdaSerializer).GetMethod("Serialize").MakeGenericMethod(type);
            try { generic.Invoke(_serializer, new[] { value, output }); }
            catch (TargetInvocationException e) { ExceptionDispatchInfo.Capture(e.InnerException).Throw(); }
        }
    }

    public static class Program
    {
        private static RuntimeApi _api;

        private static void ReceiveConfig()
        {
            var line = new List<byte>();
            using (var stdin = Console.OpenStandardInput())
            {
                int b;
                while ((b = stdin.ReadByte()) != -1 && b != '\n') line.Add((byte)b);
            }
            var env = JObject.Parse(Encoding.UTF8.GetString(line.ToArray()))["env"] as JObject;
            foreach (DictionaryEntry old in Environment.GetEnvironmentVariables())
            {
                Environment.SetEnvironmentVariable((string)old.Key, null);
            }
            foreach (var pair in env)
            {
                Environment.SetEnvironmentVariable(pair.Key, (string)pair.Value);
            }
            Console.SetIn(TextReader.Null);
        }

        internal static byte[] ErrorDocument(Exception e)
        {
            return Encoding.UTF8.GetBytes(Describe(e).ToString(Formatting.None));
        }

        private static JObject Describe(Exception e)
        {
            var doc = new JObject
            {
                ["errorType"] = e.GetType().Name,
                ["errorMessage"] = e.Message,
            };
            if (e.StackTrace != null)
            {
                doc["stackTrace"] = new JArray(e.StackTrace.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
            }
            if (e.InnerException != null)
            {
                doc["cause"] = Describe(e.InnerException);
            }
            return doc;
        }

        public static int Main(string[] args)
        {
            if (Environment.GetEnvironmentVariable("LAMBDALET_CONFIG") == "stdin")
            {
                ReceiveConfig();
            }
            string taskRoot = Environment.GetEnvironmentVariable("LAMBDA_TASK_ROOT") ?? "/var/task";
            Directory.SetCurrentDirectory(taskRoot);
            var rawOut = Console.OpenStandardOutput();
            var shared = new object();
            LogWriter.Json = string.Equals(Environment.GetEnvironmentVariable("AWS_LAMBDA_LOG_FORMAT"), "JSON", StringComparison.OrdinalIgnoreCase);
            string level = Environment.GetEnvironmentVariable("AWS_LAMBDA_LOG_LEVEL");
            LogLevel threshold;
            if (level != null && Enum.TryParse(level == "WARN" ? "Warning" : level == "INFO" ? "Information" : level == "FATAL" ? "Critical" : level, true, out threshold))
            {
                LogWriter.Threshold = threshold;
            }
            var stdout = new LogWriter(rawOut, LogLevel.Information, shared);
            var stderr = new LogWriter(rawOut, LogLevel.Error, shared);
            Console.SetOut(stdout);
            Console.SetError(stderr);
            var logger = new Logger(stdout);
            typeof(LambdaLogger).GetField("_sink", BindingFlags.NonPublic | BindingFlags.Static)
                .SetValue(null, new Action<string>(m => stdout.Record(LogLevel.Information, m)));
            _api = new RuntimeApi(Environment.GetEnvironmentVariable("AWS_LAMBDA_RUNTIME_API"));
            AppDomain.CurrentDomain.AssemblyResolve += (sender, e) =>
            {
                string file = Path.Combine(taskRoot, new AssemblyName(e.Name).Name + ".dll");
                return File.Exists(file) ? Assembly.LoadFrom(file) : null;
            };
            Handler handler;
            try
            {
                handler = new Handler(taskRoot, Environment.GetEnvironmentVariable("_HANDLER") ?? "");
            }
            catch (Exception e)
            {
                if (e is TargetInvocationException && e.InnerException != null) e = e.InnerException;
                stderr.Record(LogLevel.Error, e.ToString());
                _api.FailInit(e.GetType().Name, ErrorDocument(e));
                return 1;
            }
            while (true)
            {
                var next = _api.Next();
                var context = new Context(next, logger);
                LogWriter.RequestId = context.AwsRequestId;
                string trace;
                Environment.SetEnvironmentVariable("_X_AMZN_TRACE_ID", next.Headers.TryGetValue("Lambda-Runtime-Trace-Id", out trace) ? trace : null);
                byte[] answer;
                try
                {
                    answer = handler.Call(next.Body, context);
                }
                catch (Exception e)
                {
                    stdout.Flush();
                    stderr.Flush();
                    stderr.Record(LogLevel.Error, e.ToString());
                    _api.Fail(context.AwsRequestId, e.GetType().Name, ErrorDocument(e));
                    continue;
                }
                stdout.Flush();
                stderr.Flush();
                _api.Respond(context.AwsRequestId, answer);
            }
        }
    }
}
