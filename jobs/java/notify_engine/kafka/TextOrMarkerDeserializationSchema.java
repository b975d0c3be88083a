package notify_engine.kafka;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.util.Collector;

/**
 * A record's value as UTF-8 text, as SimpleStringSchema reads it, except for two records that schema
 * mishandles, each handed on as a marker the admission steps read (state_schemas/codec.py):
 * a record with no value (a tombstone on a compacted topic), which SimpleStringSchema fails on and
 * would take the job down, as {@code "\0tombstone\0<record timestamp>\0<key>"}; and a value that is
 * not valid UTF-8, which it would turn into replacement characters, losing the bytes the dead letter
 * must keep, as {@code "\0undecodable\0<the value in base64>"}. Built against the shaded Kafka client
 * of flink-sql-connector-kafka, the connector this project ships.
 */
public final class TextOrMarkerDeserializationSchema implements KafkaRecordDeserializationSchema<String> {
    private static final long serialVersionUID = 1L;
    private static final String TOMBSTONE = "\u0000tombstone\u0000";
    private static final String UNDECODABLE = "\u0000undecodable\u0000";

    // One source reader calls this from one thread; decoders keep state, so each instance has its own.
    private transient CharsetDecoder strictUtf8;

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<String> out) throws IOException {
        byte[] value = record.value();
        if (value == null) {
            String key = record.key() == null ? "" : new String(record.key(), StandardCharsets.UTF_8);
            out.collect(TOMBSTONE + record.timestamp() + "\u0000" + key);
            return;
        }
        if (strictUtf8 == null) {
            strictUtf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        }
        try {
            out.collect(strictUtf8.decode(ByteBuffer.wrap(value)).toString());
        } catch (CharacterCodingException notUtf8) {
            out.collect(UNDECODABLE + Base64.getEncoder().encodeToString(value));
        }
    }

    @Override
    public TypeInformation<String> getProducedType() {
        return Types.STRING;
    }
}
