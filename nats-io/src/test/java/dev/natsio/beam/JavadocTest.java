package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.empty;

import java.io.File;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.tools.Diagnostic;
import javax.tools.DocumentationTool;
import javax.tools.ToolProvider;
import org.junit.Test;

/**
 * Every public type and member of the library has a Javadoc comment. The build's Javadoc jar runs
 * doclint without its "missing" group (it would also demand an {@code @param} and {@code @return}
 * on every method that already says both in its first sentence), so this checks the one part of
 * that group the project keeps: no public API without a comment.
 */
public class JavadocTest {
  @Test
  public void everyPublicTypeAndMemberHasAComment() throws Exception {
    Path out = Files.createTempDirectory("natsio-javadoc-");
    List<String> uncommented = new CopyOnWriteArrayList<>();
    DocumentationTool javadoc = ToolProvider.getSystemDocumentationTool();
    List<String> options = List.of("-Xdoclint:missing", "-Xmaxwarns", "1000000", "-quiet", "-d", out.toString(),
        "-sourcepath", "src/main/java", "-subpackages", "dev.natsio.beam",
        "-classpath", System.getProperty("java.class.path"));
    DocumentationTool.DocumentationTask task = javadoc.getTask(new StringWriter(), null, diagnostic -> {
      String message = diagnostic.getMessage(Locale.ROOT);
      if (diagnostic.getKind() == Diagnostic.Kind.WARNING && message.startsWith("no comment") && diagnostic.getSource() != null) {
        uncommented.add(new File(diagnostic.getSource().getName()).getName() + ":" + diagnostic.getLineNumber());
      }
    }, null, options, null);
    try {
      task.call();
    } finally {
      try (java.util.stream.Stream<Path> files = Files.walk(out)) {
        files.sorted(java.util.Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
      }
    }
    assertThat(uncommented, empty());
  }
}
