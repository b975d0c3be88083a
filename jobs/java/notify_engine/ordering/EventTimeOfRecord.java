package notify_engine.ordering;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;

/**
 * The event time of a raw JSON record as a Kafka source reads it: its top-level {@code "ts"} (epoch ms).
 *
 * <p>Set on the source, so each partition keeps a watermark of its own: a watermark made after the
 * source, from partitions interleaved as the reader happened to fetch them, let one partition's batch
 * run ahead and made the other's records late, differently on every run. Admission has not seen the
 * record yet, so only a record that is well-formed JSON (a whole object, within the payload limit) with
 * a plausible integer {@code ts} (not before {@code earliestMs}, not more than {@code maxAheadMs} ahead
 * of the wall clock) moves event time; any other gets {@code Long.MIN_VALUE}, as do the markers of
 * {@code TextOrMarkerDeserializationSchema} (they start with a NUL). A record that is well-formed with a
 * plausible time but wrong in some other way (a field of the wrong type) is dead-lettered by admission
 * after its time counted: as any record stamped ahead of its partition would, it can make the ones after
 * it late if its time runs ahead of theirs.
 */
public final class EventTimeOfRecord implements SerializableTimestampAssigner<String> {
    private static final long serialVersionUID = 1L;
    private static final long UNTIMED = Long.MIN_VALUE;

    private final long earliestMs;
    private final long maxAheadMs;
    private final int maxChars;
    private transient JsonFactory json;

    public EventTimeOfRecord(long earliestMs, long maxAheadMs, int maxPayloadBytes) {
        this.earliestMs = earliestMs;
        this.maxAheadMs = maxAheadMs;
        this.maxChars = maxPayloadBytes;  // a text of more characters has more UTF-8 bytes still
    }

    @Override
    public long extractTimestamp(String record, long kafkaTimestamp) {
        if (record == null || record.isEmpty() || record.charAt(0) == '\u0000' || record.length() > maxChars) {
            return UNTIMED;
        }
        if (json == null) {
            json = new JsonFactory();
        }
        long time = UNTIMED;
        try (JsonParser parser = json.createParser(record)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return UNTIMED;
            }
            JsonToken token;
            while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
                boolean isTime = "ts".equals(parser.currentName());
                JsonToken value = parser.nextToken();
                if (isTime && value == JsonToken.VALUE_NUMBER_INT) {
                    time = plausible(parser.getValueAsLong(UNTIMED));
                } else if (isTime) {
                    return UNTIMED;
                }
                parser.skipChildren();  // iterative, and Jackson refuses nesting past its depth limit
            }
            if (token != JsonToken.END_OBJECT || parser.nextToken() != null) {
                return UNTIMED;  // cut short, or more after the object
            }
        } catch (Exception unreadable) {  // malformed, too deep, a number too long: admission says why
            return UNTIMED;
        }
        return time;
    }

    private long plausible(long ts) {
        return ts < earliestMs || ts > System.currentTimeMillis() + maxAheadMs ? UNTIMED : ts;
    }
}
