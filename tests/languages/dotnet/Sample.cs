// A C# Lambda function as its authors write it for AWS's dotnet8: handlers
// against Amazon.Lambda.Core with the serializer AWS's templates name. The
// tests compile it with Mono's mcs (tests/language_builds.py) against
// Lambdalet's Amazon.Lambda.Core contract, once per run.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading.Tasks;
using Amazon.Lambda.Core;

[assembly: LambdaSerializer(typeof(Amazon.Lambda.Serialization.SystemTextJson.DefaultLambdaJsonSerializer))]

namespace Sample
{
    public class Person
    {
        public string Name { get; set; }
        public int Age { get; set; }
    }

    public class Greeting
    {
        public string Message { get; set; }
        public string RequestId { get; set; }
        public string FunctionName { get; set; }
        public int Memory { get; set; }
        public string Arn { get; set; }
        public string LogGroup { get; set; }
        public string LogStream { get; set; }
        public double RemainingMs { get; set; }
        public string Setting { get; set; }
        public string Cwd { get; set; }
    }

    // Named as the function URL's response fields are (AWS's
    // APIGatewayHttpApiV2ProxyResponse maps them with attributes).
    public class HttpResponse
    {
        public int statusCode { get; set; }
        public Dictionary<string, string> headers { get; set; }
        public string body { get; set; }
    }

    public class Functions
    {
        private static int _calls;

        public Greeting Greet(Person person, ILambdaContext context)
        {
            _calls++;
            context.Logger.LogLine("greeting " + person.Name);
            context.Logger.LogWarning("a warning");
            Console.WriteLine("console line");
            return new Greeting
            {
                Message = "Hello, " + person.Name + " (" + person.Age + ")",
                RequestId = context.AwsRequestId,
                FunctionName = context.FunctionName,
                Memory = context.MemoryLimitInMB,
                Arn = context.InvokedFunctionArn,
                LogGroup = context.LogGroupName,
                LogStream = context.LogStreamName,
                RemainingMs = context.RemainingTime.TotalMilliseconds,
                Setting = Environment.GetEnvironmentVariable("MY_SETTING"),
                Cwd = Directory.GetCurrentDirectory(),
            };
        }

        public async Task<string> UpperAsync(string text, ILambdaContext context)
        {
            await Task.Delay(5);
            return text.ToUpperInvariant();
        }

        public Stream Raw(Stream input)
        {
            var reader = new StreamReader(input);
            return new MemoryStream(Encoding.UTF8.GetBytes("{\"raw\":" + reader.ReadToEnd() + "}"));
        }

        public static int Twice(int n)
        {
            return n * 2;
        }

        public Dictionary<string, object> Dict(Dictionary<string, object> input)
        {
            input["seen"] = true;
            return input;
        }

        public HttpResponse Http(Dictionary<string, object> request)
        {
            return new HttpResponse
            {
                statusCode = 203,
                headers = new Dictionary<string, string> { { "x-from", "csharp" }, { "content-type", "text/plain" } },
                body = "csharp saw " + request["rawPath"],
            };
        }

        public void Fails(Person person)
        {
            throw new InvalidOperationException("it went wrong in C#", new ArgumentException("the cause"));
        }

        public async Task FailsAsync(Person person)
        {
            await Task.Delay(1);
            throw new KeyNotFoundException("async failure");
        }

        public string Sleeps(Dictionary<string, int> request)
        {
            System.Threading.Thread.Sleep(request["ms"]);
            return "slept";
        }

        /// <summary>What the sandbox lets this process see and do (tests/test_language_core.py).</summary>
        public Dictionary<string, object> Probe(Dictionary<string, object> request)
        {
            var seen = new Dictionary<string, object>();
            foreach (var line in File.ReadAllLines("/proc/self/status"))
            {
                var kv = line.Split(new[] { ':' }, 2);
                if (kv.Length == 2 && (kv[0] == "Uid" || kv[0] == "CapEff" || kv[0] == "Seccomp" || kv[0] == "NoNewPrivs"))
                {
                    seen[kv[0]] = kv[1].Trim();
                }
            }
            try
            {
                File.WriteAllText("/var/task/written", "x");
                seen["taskWritable"] = true;
            }
            catch (Exception)
            {
                seen["taskWritable"] = false;
            }
            var ifaces = new List<string>();
            foreach (var line in File.ReadAllLines("/proc/net/dev"))
            {
                int colon = line.IndexOf(':');
                if (colon > 0) ifaces.Add(line.Substring(0, colon).Trim());
            }
            seen["interfaces"] = ifaces;
            seen["hostname"] = File.ReadAllText("/proc/sys/kernel/hostname").Trim();
            seen["etcShadow"] = File.Exists("/etc/shadow");
            File.WriteAllText("/tmp/probe", "x");
            seen["tmpWritable"] = File.Exists("/tmp/probe");
            return seen;
        }

        public string Hog(Person person)
        {
            var hold = new List<byte[]>();
            while (true)
            {
                var block = new byte[16 << 20];
                for (int i = 0; i < block.Length; i += 4096) block[i] = 1;
                hold.Add(block);
            }
        }
    }
}
