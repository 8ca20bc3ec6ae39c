package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.empty;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.Test;

/**
 * Avro and Arrow stay optional: only the classes that implement those formats name their types.
 * Java serialization resolves every declared method's parameter types, so one such method in a
 * class a JSON pipeline serializes breaks that pipeline when Avro is absent. The examples module
 * runs a JSON pipeline without Avro and Arrow; this test names the offending member at once.
 */
public class OptionalDependenciesTest {
  private static final Set<String> OPTIONAL_FORMAT_CLASSES =
      Set.of("AvroFormat", "ArrowFormat", "NatsAvroFormat");

  @Test
  public void onlyTheAvroAndArrowFormatClassesNameAvroOrArrowTypes() throws Exception {
    List<String> offenders = new ArrayList<>();
    for (Class<?> type : libraryClasses()) {
      String outer = type.getName().substring("dev.natsio.beam.".length()).split("\\$")[0];
      if (OPTIONAL_FORMAT_CLASSES.contains(outer)) {
        continue;
      }
      for (Method m : type.getDeclaredMethods()) {
        check(offenders, type, m.toGenericString(), m.getReturnType(), m.getParameterTypes());
      }
      for (Constructor<?> c : type.getDeclaredConstructors()) {
        check(offenders, type, c.toGenericString(), void.class, c.getParameterTypes());
      }
      for (Field f : type.getDeclaredFields()) {
        check(offenders, type, f.toGenericString(), f.getType());
      }
    }
    assertThat(offenders, empty());
  }

  private static void check(List<String> offenders, Class<?> owner, String member, Class<?> first, Class<?>... more) {
    for (Class<?> t : Stream.concat(Stream.of(first), Stream.of(more)).collect(Collectors.toList())) {
      while (t.isArray()) {
        t = t.getComponentType();
      }
      String name = t.getName();
      if (name.startsWith("org.apache.avro.") || name.startsWith("org.apache.arrow.")
          || name.startsWith("org.apache.beam.sdk.extensions.avro.") || name.startsWith("org.apache.beam.sdk.extensions.arrow.")) {
        offenders.add(owner.getName() + ": " + member);
      }
    }
  }

  /** Every class compiled from nats-io's main sources in package dev.natsio.beam. */
  private static List<Class<?>> libraryClasses() throws IOException, URISyntaxException, ClassNotFoundException {
    Path root = Path.of(NatsIO.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    Path dir = root.resolve("dev/natsio/beam");
    List<Class<?>> classes = new ArrayList<>();
    try (Stream<Path> files = Files.list(dir)) {
      for (Path file : (Iterable<Path>) files::iterator) {
        String name = file.getFileName().toString();
        if (name.endsWith(".class")) {
          classes.add(Class.forName("dev.natsio.beam." + name.substring(0, name.length() - ".class".length()), false,
              OptionalDependenciesTest.class.getClassLoader()));
        }
      }
    }
    return classes;
  }
}
