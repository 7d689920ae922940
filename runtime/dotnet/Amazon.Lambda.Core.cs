// The contract C# handlers compile against, with the names and members of
// AWS's Amazon.Lambda.Core (netstandard2.0), so that the same handler code
// builds against either and runs on AWS's dotnet8 and on Lambdalet's Mono.
// Written for Lambdalet; the runtime host (LambdaletRuntime.cs) implements it.
using System;
using System.Collections.Generic;
using System.IO;

[assembly: System.Reflection.AssemblyVersion("2.0.0.0")]
[assembly: System.Reflection.AssemblyTitle("Amazon.Lambda.Core (Lambdalet's contract)")]

namespace Amazon.Lambda.Core
{
    public interface ILambdaContext
    {
        string AwsRequestId { get; }
        IClientContext ClientContext { get; }
        string FunctionName { get; }
        string FunctionVersion { get; }
        ICognitoIdentity Identity { get; }
        string InvokedFunctionArn { get; }
        ILambdaLogger Logger { get; }
        string LogGroupName { get; }
        string LogStreamName { get; }
        int MemoryLimitInMB { get; }
        TimeSpan RemainingTime { get; }
    }

    public interface IClientApplication
    {
        string AppPackageName { get; }
        string AppTitle { get; }
        string AppVersionCode { get; }
        string AppVersionName { get; }
        string InstallationId { get; }
    }

    public interface IClientContext
    {
        IDictionary<string, string> Environment { get; }
        IClientApplication Client { get; }
        IDictionary<string, string> Custom { get; }
    }

    public interface ICognitoIdentity
    {
        string IdentityId { get; }
        string IdentityPoolId { get; }
    }

    public enum LogLevel
    {
        Trace = 0,
        Debug = 1,
        Information = 2,
        Warning = 3,
        Error = 4,
        Critical = 5,
    }

    public interface ILambdaLogger
    {
        void Log(string message);
        void LogLine(string message);
        void Log(string level, string message);
        void Log(LogLevel level, string message);
        void LogTrace(string message);
        void LogDebug(string message);
        void LogInformation(string message);
        void LogWarning(string message);
        void LogError(string message);
        void LogCritical(string message);
    }

    public interface ILambdaSerializer
    {
        T Deserialize<T>(Stream requestStream);
        void Serialize<T>(T response, Stream responseStream);
    }

    [AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Method, AllowMultiple = false)]
    public sealed class LambdaSerializerAttribute : Attribute
    {
        public LambdaSerializerAttribute(Type serializerType)
        {
            SerializerType = serializerType;
        }

        public Type SerializerType { get; set; }
    }

    /// <summary>Logging outside a handler's context object.</summary>
    public static class LambdaLogger
    {
        // Set by the runtime host once it runs; before that, stdout.
        private static Action<string> _sink = message => Console.Write(message);

        public static void Log(string message)
        {
            _sink(message);
        }
    }
}
