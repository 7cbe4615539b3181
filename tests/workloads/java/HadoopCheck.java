// What the tests ask of the feature job's Hadoop classpath (.cache/spark/jars, the image's /opt/spark/jars),
// run as a Java source file so each check gets a JVM with its own environment:
//   java -cp 'JARS/*' HadoopCheck.java version                     Hadoop's version
//   java -cp 'JARS/*' HadoopCheck.java classes NAME...            load each class by name
//   java -cp 'JARS/*' HadoopCheck.java abfs-token ACCOUNT KEY=VALUE...  ABFS's token provider for ACCOUNT, and one token
//   java -cp 'JARS/*' HadoopCheck.java ls URI KEY=VALUE...           list URI through its Hadoop filesystem
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.azurebfs.AbfsConfiguration;

public class HadoopCheck {
  public static void main(String[] args) throws Exception {
    if (args[0].equals("version")) {
      System.out.println(org.apache.hadoop.util.VersionInfo.getVersion());
      return;
    }
    if (args[0].equals("classes")) {
      for (int i = 1; i < args.length; i++) {
        System.out.println("loaded " + Class.forName(args[i]).getName());
      }
      return;
    }
    Configuration conf = new Configuration();
    for (int i = 2; i < args.length; i++) {
      String[] pair = args[i].split("=", 2);
      conf.set(pair[0], pair[1]);
    }
    if (args[0].equals("ls")) {
      var path = new org.apache.hadoop.fs.Path(args[1]);
      for (var status : path.getFileSystem(conf).listStatus(path)) {
        System.out.println("listed " + status.getPath().getName());
      }
      return;
    }
    var provider = new AbfsConfiguration(conf, args[1]).getTokenProvider();
    System.out.println("provider " + provider.getClass().getName());
    System.out.println("token " + provider.getToken().getAccessToken());
  }
}
