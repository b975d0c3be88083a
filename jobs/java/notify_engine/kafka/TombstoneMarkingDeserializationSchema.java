package notify_engine.kafka;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.util.Collector;

/**
 * A record's value as UTF-8 text, as SimpleStringSchema reads it; a record with no value (a tombstone
 * on a compacted topic), which SimpleStringSchema fails on and would take the job down, as
 * {@code "\0tombstone\0<record timestamp>\0<key>"}: the admission step of the source decides what it
 * means (state_schemas/codec.py TOMBSTONE). Built against the shaded Kafka client of
 * flink-sql-connector-kafka, the connector this project ships.
 */
public final class TombstoneMarkingDeserializationSchema implements KafkaRecordDeserializationSchema<String> {
    private static final long serialVersionUID = 1L;
    private static final String TOMBSTONE = "\u0000tombstone\u0000";

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<String> out) throws IOException {
        if (record.value() != null) {
            out.collect(new String(record.value(), StandardCharsets.UTF_8));
            return;
        }
        String key = record.key() == null ? "" : new String(record.key(), StandardCharsets.UTF_8);
        out.collect(TOMBSTONE + record.timestamp() + "\u0000" + key);
    }

    @Override
    public TypeInformation<String> getProducedType() {
        return Types.STRING;
    }
}
