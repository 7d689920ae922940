// Amazon.Lambda.Serialization.Json's serializer (Json.NET, as AWS's is), by name.
using System.IO;
using Amazon.Lambda.Core;
using Lambdalet.Serialization;

[assembly: System.Reflection.AssemblyVersion("2.0.0.0")]

namespace Amazon.Lambda.Serialization.Json
{
    public class JsonSerializer : ILambdaSerializer
    {
        public T Deserialize<T>(Stream requestStream) { return JsonNet.Deserialize<T>(requestStream); }
        public void Serialize<T>(T response, Stream responseStream) { JsonNet.Serialize(response, responseStream); }
    }
}
