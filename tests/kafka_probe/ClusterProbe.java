// What the Kafka admin API tells about a cluster that confluent-kafka's admin client cannot ask: the KRaft
// quorum's leader (DescribeMetadataQuorum) and the coordinator of a transactional id (DescribeTransactions,
// after FindCoordinator). Run with Java's single-file source launcher against the stack's Kafka jars:
//   java -cp '<kafka libs>/*' ClusterProbe.java <client.properties> quorum
//   java -cp '<kafka libs>/*' ClusterProbe.java <client.properties> transaction <transactional.id>
// Prints one JSON object on stdout.
import java.io.FileInputStream;
import java.util.List;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.TransactionDescription;

public class ClusterProbe {
    public static void main(String[] args) throws Exception {
        Properties config = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) {
            config.load(in);
        }
        try (Admin admin = Admin.create(config)) {
            if (args[1].equals("quorum")) {
                QuorumInfo quorum = admin.describeMetadataQuorum().quorumInfo().get();
                String voters = quorum.voters().stream()
                    .map(v -> String.valueOf(v.replicaId()))
                    .collect(Collectors.joining(","));
                System.out.println("{\"leader\": " + quorum.leaderId() + ", \"epoch\": " + quorum.leaderEpoch()
                    + ", \"voters\": [" + voters + "]}");
            } else if (args[1].equals("transaction")) {
                String id = args[2];
                TransactionDescription d = admin.describeTransactions(List.of(id)).description(id).get();
                System.out.println("{\"coordinator\": " + d.coordinatorId() + ", \"state\": \"" + d.state()
                    + "\", \"producer_epoch\": " + d.producerEpoch() + "}");
            } else {
                throw new IllegalArgumentException("unknown request " + args[1] + ": quorum or transaction");
            }
        }
    }
}
