package notify_engine.kafka;

import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.types.Row;

/**
 * One field of a row as UTF-8 bytes: the Kafka sink's record key and value from a Python
 * {@code Row(key, value)}. PyFlink's sink serialises the whole element for both, so a record
 * keyed by one of its fields needs this one class.
 */
public final class RowFieldSerializationSchema implements SerializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    private final int field;

    public RowFieldSerializationSchema(int field) {
        this.field = field;
    }

    @Override
    public byte[] serialize(Row row) {
        Object value = row.getField(field);
        return value == null ? null : value.toString().getBytes(StandardCharsets.UTF_8);
    }
}
