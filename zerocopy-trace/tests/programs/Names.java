import java.io.FileOutputStream;
import java.util.concurrent.CountDownLatch;

/** Writes exactly BYTES bytes to OUT from THREADS threads that rename themselves, then exits
 *  while they still live (daemons), so one of them may well be the last thread to exit. */
public class Names {
    public static void main(String[] args) throws Exception {
        String out = args[0];
        long bytes = Long.parseLong(args[1]);
        int threads = Integer.parseInt(args[2]);
        long share = bytes / threads;
        CountDownLatch written = new CountDownLatch(threads);
        try (FileOutputStream file = new FileOutputStream(out)) {
            for (int t = 0; t < threads; t++) {
                final long mine = t == threads - 1 ? bytes - share * (threads - 1) : share;
                final int index = t;
                Thread worker = new Thread(() -> {
                    // Renames the native thread too (its comm): only the current thread can.
                    Thread.currentThread().setName("renamed-" + index);
                    byte[] chunk = new byte[65536];
                    long left = mine;
                    try {
                        while (left > 0) {
                            int n = (int) Math.min(left, chunk.length);
                            synchronized (file) { file.write(chunk, 0, n); }
                            left -= n;
                        }
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                    written.countDown();
                    try { Thread.sleep(600_000); } catch (InterruptedException e) { }
                });
                worker.setDaemon(true);
                worker.start();
            }
            written.await();
        }
    }
}
