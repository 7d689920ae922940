// Mono under the sandbox: the runtime's threads and GC, a thread pool, loopback TCP, a child process.
using System;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks;
using System.Diagnostics;
class Probe {
    static void Main() {
        var tasks = new Task<int>[8];
        for (int i = 0; i < 8; i++) { int n = i; tasks[i] = Task.Run(() => n * n); }
        Task.WaitAll(tasks);
        int sum = 0; foreach (var t in tasks) sum += t.Result;
        var listener = new TcpListener(IPAddress.Loopback, 0); listener.Start();
        var client = new TcpClient(); client.Connect(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var accepted = listener.AcceptTcpClient();
        client.GetStream().WriteByte((byte)'x');
        int got = accepted.GetStream().ReadByte();
        var p = Process.Start(new ProcessStartInfo("/bin/sh", "-c \"echo child\"") { RedirectStandardOutput = true, UseShellExecute = false });
        string child = p.StandardOutput.ReadLine(); p.WaitForExit();
        GC.Collect();
        Console.WriteLine("{\"sum\": " + sum + ", \"loopback\": \"" + (char)got + "\", \"child\": \"" + child + "\"}");
    }
}
