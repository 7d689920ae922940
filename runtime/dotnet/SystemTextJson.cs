// Amazon.Lambda.Serialization.SystemTextJson's serializers, by name: an
// assembly attribute naming DefaultLambdaJsonSerializer (what AWS's .NET 8
// templates write) compiles and runs. On Mono the JSON is Json.NET's.
using System.IO;
using Amazon.Lambda.Core;
using Lambdalet.Serialization;

[assembly: System.Reflection.AssemblyVersion("2.0.0.0")]

namespace Amazon.Lambda.Serialization.SystemTextJson
{
    public class DefaultLambdaJsonSerializer : ILambdaSerializer
    {
        public T Deserialize<T>(Stream requestStream) { return JsonNet.Deserialize<T>(requestStream); }
        public void Serialize<T>(T response, Stream responseStream) { JsonNet.Serialize(response, responseStream); }
    }

    public class LambdaJsonSerializer : DefaultLambdaJsonSerializer
    {
    }
}
