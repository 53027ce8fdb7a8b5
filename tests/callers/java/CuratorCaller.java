// A caller as a Java team writes it with Apache Curator's service discovery:
// a ServiceDiscovery on base path /services and a ServiceProvider (which
// keeps a ServiceCache, i.e. follows the registry with watches), sending
// HTTP GET / at a fixed rate to the instance the provider picks. zkroll's
// tests and bench/e2e run it against real agents to prove that Curator
// callers need no change (docs/callers.md).
//
//   java -cp ... CuratorCaller --zk HOST:PORT[/chroot] --service NAME
//       [--rate 200] [--requests 1000] [--max-seconds 300] [--timeout-ms 2000]
//       [--connections 32] [--stop-file PATH] [--log-requests]
//   java -cp ... CuratorCaller --zk ... --service NAME --register-port PORT
//       [--stop-file PATH] [--max-seconds N]
//
// --register-port registers an instance the way a Curator service does
// (ServiceDiscovery.registerService: a UUID id, 127.0.0.1:PORT), prints
// "registered id=ID", and keeps it until the stop file appears or
// --max-seconds pass: a foreign node for zkroll's readers to skip.
//
// Output, one event per line, "key=value" words (parseable by the tests):
//   instances seq=N t=MS list=IP:PORT,IP:PORT   the provider's instances changed
//   instance id=.. name=.. address=.. port=.. sslPort=.. serviceType=..
//            enabled=.. uri=.. payload=..         each newly seen instance
//   send seq=N instance=IP:PORT                 with --log-requests
//   fail seq=N instance=IP:PORT cause=..        every failed request
//   second=S sent=N ok=N failed=N               once a second
//   summary sent=N ok=N failed=N no_instance=N per=IP:PORT=OK;...
// The send line is printed after the instance list read before the pick
// (and read again if the pick is not in it: the cache gained it meanwhile),
// so a send printed after an "instances" line that lacks an instance was
// never to that instance (the provider's cache had dropped it already).
// Requests are sent by --connections threads over HTTP/1.1 keep-alive
// connections (at most one each, as zkroll's load generator), queueing when
// all are busy; the pick and its "send" line happen on the ticker, on time.
// Exit: 0 when every request got a 2xx, 1 when some failed, 2 on bad usage.
import java.io.File;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.strategies.RoundRobinStrategy;

public final class CuratorCaller {
  private static final PrintStream out = System.out;

  private static synchronized void emit(String line) {
    out.println(line);
    out.flush();
  }

  private static String key(ServiceInstance<?> i) {
    return i.getAddress() + ":" + i.getPort();
  }

  private static String usage(String why) {
    System.err.println("CuratorCaller: " + why);
    System.err.println("usage: CuratorCaller --zk CONNECT --service NAME [--rate N] "
        + "[--requests N] [--max-seconds N] [--timeout-ms N] [--connections N] "
        + "[--stop-file PATH] "
        + "[--log-requests]");
    System.exit(2);
    return null;
  }

  // Reads the provider's instances; prints each one seen for the first time
  // and the whole list when it changed. Returns the list's keys.
  private static List<String> readList(ServiceProvider<Map> provider,
      TreeSet<String> seen, String[] lastList, long[] listSeq) throws Exception {
    List<String> keys = new ArrayList<>();
    for (ServiceInstance<Map> i : provider.getAllInstances()) {
      keys.add(key(i));
      synchronized (seen) {
        if (seen.add(i.getId() + "@" + key(i))) {
          emit("instance id=" + i.getId() + " name=" + i.getName() + " address="
              + i.getAddress() + " port=" + i.getPort() + " sslPort=" + i.getSslPort()
              + " serviceType=" + i.getServiceType() + " enabled=" + i.isEnabled()
              + " uri=" + (i.getUriSpec() == null ? "null" : i.buildUriSpec())
              + " payload=" + i.getPayload());
        }
      }
    }
    java.util.Collections.sort(keys);
    String list = String.join(",", keys);
    if (!list.equals(lastList[0])) {
      lastList[0] = list;
      emit("instances seq=" + (++listSeq[0]) + " t=" + System.currentTimeMillis()
          + " list=" + list);
    }
    return keys;
  }

  // Returns once `path` exists or `maxSeconds` passed, woken by the file
  // system's create events rather than by polling.
  private static void awaitFile(String path, long maxSeconds) throws Exception {
    Path file = Paths.get(path).toAbsolutePath();
    try (WatchService ws = FileSystems.getDefault().newWatchService()) {
      file.getParent().register(ws, StandardWatchEventKinds.ENTRY_CREATE);
      long until = System.nanoTime() + maxSeconds * 1_000_000_000L;
      while (!Files.exists(file)) {
        long left = until - System.nanoTime();
        if (left <= 0) return;
        WatchKey key = ws.poll(left, TimeUnit.NANOSECONDS);
        if (key != null) {
          key.pollEvents();
          key.reset();
        }
      }
    }
  }

  private static long number(String flag, String text, long min, long max) {
    try {
      long v = Long.parseLong(text);
      if (v >= min && v <= max) return v;
    } catch (NumberFormatException e) {
      // reported below
    }
    usage(flag + " '" + text + "' must be a whole number from " + min + " to " + max);
    return 0;
  }

  public static void main(String[] args) throws Exception {
    String zk = null, service = null, stopFile = null;
    long rate = 200, requests = 1000, maxSeconds = 300, timeoutMs = 2000;
    long connections = 32;
    long registerPort = 0;
    boolean logRequests = false;
    for (int i = 0; i < args.length; ++i) {
      String a = args[i];
      if (a.equals("--log-requests")) { logRequests = true; continue; }
      if (i + 1 >= args.length) usage(a + " needs a value");
      String v = args[++i];
      switch (a) {
        case "--zk": zk = v; break;
        case "--service": service = v; break;
        case "--stop-file": stopFile = v; break;
        case "--rate": rate = number(a, v, 1, 10000); break;
        case "--requests": requests = number(a, v, 1, 10_000_000); break;
        case "--max-seconds": maxSeconds = number(a, v, 1, 3600); break;
        case "--timeout-ms": timeoutMs = number(a, v, 1, 60000); break;
        case "--connections": connections = number(a, v, 1, 256); break;
        case "--register-port": registerPort = number(a, v, 1, 65535); break;
        default: usage("unknown option " + a);
      }
    }
    if (zk == null || service == null) usage("--zk and --service are required");
    if (registerPort != 0 && stopFile == null) usage("--register-port needs --stop-file");

    CuratorFramework client = CuratorFrameworkFactory.newClient(
        zk, new ExponentialBackoffRetry(200, 10));
    client.start();
    if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
      System.err.println("CuratorCaller: cannot connect to " + zk);
      System.exit(1);
    }
    // Map: zkroll's payload (when an agent sets one) is a JSON object.
    @SuppressWarnings({"unchecked", "rawtypes"})
    ServiceDiscovery<Map> discovery = ServiceDiscoveryBuilder.builder(Map.class)
        .client(client).basePath("/services").build();
    discovery.start();
    if (registerPort != 0) {
      ServiceInstance<Map> own = ServiceInstance.<Map>builder()
          .name(service).address("127.0.0.1").port((int) registerPort).build();
      discovery.registerService(own);
      emit("registered id=" + own.getId());
      awaitFile(stopFile, maxSeconds);
      discovery.unregisterService(own);
      discovery.close();
      client.close();
      System.exit(0);
    }
    ServiceProvider<Map> provider = discovery.serviceProviderBuilder()
        .serviceName(service).providerStrategy(new RoundRobinStrategy<>()).build();
    provider.start();

    // HTTP/1.1 with keep-alive, as most service callers: the client's
    // default (HTTP/2) would offer an h2c upgrade on every new connection.
    HttpClient http = HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofMillis(timeoutMs)).build();
    final long total = requests;
    final AtomicLong sent = new AtomicLong(), ok = new AtomicLong(),
        failed = new AtomicLong(), noInstance = new AtomicLong(), seq = new AtomicLong();
    final Map<String, AtomicLong> perInstance = new ConcurrentHashMap<>();
    final CountDownLatch done = new CountDownLatch((int) Math.min(total, Integer.MAX_VALUE));
    final TreeSet<String> seen = new TreeSet<>();
    final String[] lastList = {null};
    final long[] listSeq = {0};
    final long start = System.nanoTime();
    final long[] lastSecond = {0, 0, 0, 0};  // second, sent, ok, failed at its start
    final String stop = stopFile;
    final boolean logReq = logRequests;
    final long timeout = timeoutMs;
    final HttpClient httpClient = http;
    ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor();
    ExecutorService senders = Executors.newFixedThreadPool((int) connections);
    Runnable tick = () -> {
      try {
        if (sent.get() >= total || (stop != null && new File(stop).exists())) return;
        // The list first, then the pick (see the header). The cache may
        // gain an instance between the two reads: then the list is read and
        // printed again, so a send never precedes the list that has it.
        List<String> keys = readList(provider, seen, lastList, listSeq);
        ServiceInstance<Map> pick = provider.getInstance();
        if (pick != null && !keys.contains(key(pick))) {
          readList(provider, seen, lastList, listSeq);
        }
        long n = seq.incrementAndGet();
        sent.incrementAndGet();
        if (pick == null) {
          noInstance.incrementAndGet();
          failed.incrementAndGet();
          emit("fail seq=" + n + " instance=none cause=no_instance");
          done.countDown();
          return;
        }
        String to = key(pick);
        if (logReq) emit("send seq=" + n + " instance=" + to);
        HttpRequest req = HttpRequest.newBuilder(
            URI.create("http://" + pick.getAddress() + ":" + pick.getPort() + "/"))
            .timeout(Duration.ofMillis(timeout)).GET().build();
        senders.execute(() -> {
          HttpResponse<Void> resp = null;
          Throwable err = null;
          try {
            resp = httpClient.send(req, HttpResponse.BodyHandlers.discarding());
          } catch (Exception e) {
            err = e;
          }
          if (err == null && resp.statusCode() / 100 == 2) {
            ok.incrementAndGet();
            perInstance.computeIfAbsent(to, k -> new AtomicLong()).incrementAndGet();
          } else {
            failed.incrementAndGet();
            String cause = err != null ? err.getClass().getSimpleName()
                                       : "status_" + resp.statusCode();
            emit("fail seq=" + n + " instance=" + to + " cause=" + cause);
          }
          done.countDown();
        });
      } catch (Exception e) {
        emit("error " + e);
      }
    };
    long periodNanos = 1_000_000_000L / rate;
    ticker.scheduleAtFixedRate(tick, 0, periodNanos, TimeUnit.NANOSECONDS);
    ScheduledExecutorService seconds = Executors.newSingleThreadScheduledExecutor();
    seconds.scheduleAtFixedRate(() -> {
      long s = sent.get(), o = ok.get(), f = failed.get();
      emit("second=" + lastSecond[0] + " sent=" + (s - lastSecond[1]) + " ok="
          + (o - lastSecond[2]) + " failed=" + (f - lastSecond[3]));
      lastSecond[0]++;
      lastSecond[1] = s;
      lastSecond[2] = o;
      lastSecond[3] = f;
    }, 1, 1, TimeUnit.SECONDS);

    // Ends when every request was answered, the stop file appears, or
    // --max-seconds passed: every run is bounded.
    long deadline = start + maxSeconds * 1_000_000_000L;
    while (System.nanoTime() < deadline) {
      if (done.await(100, TimeUnit.MILLISECONDS)) break;
      if (stop != null && new File(stop).exists()
          && ok.get() + failed.get() >= sent.get()) break;
    }
    ticker.shutdownNow();
    senders.shutdownNow();
    seconds.shutdownNow();
    Map<String, AtomicLong> sorted = new TreeMap<>(perInstance);
    StringBuilder per = new StringBuilder();
    for (Map.Entry<String, AtomicLong> e : sorted.entrySet()) {
      if (per.length() > 0) per.append(';');
      per.append(e.getKey()).append('=').append(e.getValue().get());
    }
    long unanswered = sent.get() - ok.get() - failed.get();
    emit("summary sent=" + sent.get() + " ok=" + ok.get() + " failed="
        + (failed.get() + unanswered) + " no_instance=" + noInstance.get()
        + " per=" + per);
    provider.close();
    discovery.close();
    client.close();
    System.exit(failed.get() + unanswered == 0 && sent.get() > 0 ? 0 : 1);
  }
}
