package dev.natsio.beam.testing;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;

/**
 * Writes to a console stream and to a buffer at once: tests that check what a program printed or
 * logged read the buffer, while the output still reaches the test report.
 */
public final class TeeOutputStream extends OutputStream {
  private final PrintStream console;
  private final ByteArrayOutputStream buffer;

  /** Copies everything written to {@code console} and {@code buffer}. */
  public TeeOutputStream(PrintStream console, ByteArrayOutputStream buffer) {
    this.console = console;
    this.buffer = buffer;
  }

  @Override
  public synchronized void write(int b) {
    console.write(b);
    buffer.write(b);
  }

  @Override
  public synchronized void write(byte[] b, int off, int len) {
    console.write(b, off, len);
    buffer.write(b, off, len);
  }
}
