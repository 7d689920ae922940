// JSON for handlers of POCOs, shared by the serializers below (compiled into
// each of their assemblies). JSON itself is Json.NET's (Newtonsoft.Json, from
// Debian's package): property names match case-insensitively when read, and
// nulls are left out when written, as AWS's serializers do.
using System.IO;
using System.Text;
using Newtonsoft.Json;

namespace Lambdalet.Serialization
{
    internal static class JsonNet
    {
        private static readonly UTF8Encoding Utf8 = new UTF8Encoding(false);
        private static readonly JsonSerializer Json = JsonSerializer.Create(new JsonSerializerSettings
        {
            NullValueHandling = NullValueHandling.Ignore,
            DateTimeZoneHandling = DateTimeZoneHandling.Utc,
        });

        internal static T Deserialize<T>(Stream requestStream)
        {
            using (var reader = new JsonTextReader(new StreamReader(requestStream, Utf8)))
            {
                return Json.Deserialize<T>(reader);
            }
        }

        internal static void Serialize<T>(T response, Stream responseStream)
        {
            var writer = new StreamWriter(responseStream, Utf8);
            Json.Serialize(writer, response);
            writer.Flush();
        }
    }
}
