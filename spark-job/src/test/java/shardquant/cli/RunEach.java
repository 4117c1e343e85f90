package shardquant.cli;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Runs several CLI commands one after another in one JVM (a child JVM's start, JIT warm-up and
 * self-check paid once): {@code RunEach quantize ... :: quantize ... :: ...}. Exits with the first
 * status that is not 0, after running them all.
 */
public final class RunEach {
  private RunEach() {}

  public static void main(String[] args) {
    int status = 0;
    List<String> command = new ArrayList<>();
    for (String a : Arrays.copyOf(args, args.length + 1)) {
      if (a == null || a.equals("::")) {
        int s = Main.run(command.toArray(new String[0]), System.out, System.err);
        System.out.println("RunEach: exit " + s + ": " + String.join(" ", command));
        status = status != 0 ? status : s;
        command.clear();
      } else {
        command.add(a);
      }
    }
    System.out.flush();
    System.exit(status);
  }
}
