package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class StatusLineTest {
  private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
  private final PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);

  @Test
  void onATerminalOneLineIsRedrawnInPlaceAndEndedOnce() {
    StatusLine line = new StatusLine(out, true, 80);
    line.update("writing 10%");
    line.update("writing 100% done");
    line.update("done"); // shorter: spaces cover what is left of the previous text
    line.end();
    line.end(); // nothing left to end
    assertEquals("\rwriting 10%\rwriting 100% done\rdone" + " ".repeat(13) + System.lineSeparator(), text());
  }

  @Test
  void onATerminalALineWiderThanItIsCutSoThatItNeverWraps() {
    StatusLine line = new StatusLine(out, true, 10);
    line.update("0123456789abc");
    line.end();
    assertEquals("\r012345678" + System.lineSeparator(), text());
  }

  @Test
  void elsewhereEachUpdateIsALine() {
    StatusLine line = new StatusLine(out, false, 10);
    line.update("writing 10%");
    line.update("done");
    line.end();
    String nl = System.lineSeparator();
    assertEquals("writing 10%" + nl + "done" + nl, text());
  }

  private String text() {
    return bytes.toString(StandardCharsets.UTF_8);
  }
}
