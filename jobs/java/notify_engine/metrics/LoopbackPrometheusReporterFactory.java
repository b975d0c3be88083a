package notify_engine.metrics;

import java.io.IOException;
import java.lang.reflect.Field;
import java.net.InetSocketAddress;
import java.util.Iterator;
import java.util.Properties;

import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.prometheus.AbstractPrometheusReporter;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;
import org.apache.flink.util.PortRange;

import io.prometheus.client.CollectorRegistry;
import io.prometheus.client.exporter.HTTPServer;

/**
 * Flink's Prometheus reporter, bound to one host ({@code host}, default 127.0.0.1) instead of every
 * interface: the stock PrometheusReporter has only a port, and this project binds nothing beyond
 * loopback unless told to. Everything else (names, labels, histograms as summaries) is the stock
 * reporter's, from its base class; {@code port} takes a range, the first free port is used.
 */
public final class LoopbackPrometheusReporterFactory implements MetricReporterFactory {

    @Override
    public MetricReporter createMetricReporter(Properties properties) {
        MetricConfig config = new MetricConfig();
        config.putAll(properties);
        return new Reporter(config.getString("host", "127.0.0.1"), new PortRange(config.getString("port", "9250")));
    }

    static final class Reporter extends AbstractPrometheusReporter {
        private final HTTPServer server;

        Reporter(String host, PortRange ports) {
            CollectorRegistry registry = registry(this);
            HTTPServer started = null;
            for (Iterator<Integer> it = ports.getPortsIterator(); it.hasNext() && started == null; ) {
                int port = it.next();
                try {
                    started = new HTTPServer(new InetSocketAddress(host, port), registry);
                    log.info("Prometheus metrics on http://{}:{}/metrics", host, port);
                } catch (IOException taken) {
                    log.debug("Prometheus port {}:{} is taken", host, port, taken);
                }
            }
            if (started == null) {
                throw new IllegalStateException("no free port for Prometheus metrics on " + host + " in " + ports);
            }
            server = started;
        }

        /** The base class's registry: package-private there, and the one its collectors are registered in. */
        private static CollectorRegistry registry(AbstractPrometheusReporter reporter) {
            try {
                Field field = AbstractPrometheusReporter.class.getDeclaredField("registry");
                field.setAccessible(true);
                return (CollectorRegistry) field.get(reporter);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("flink-metrics-prometheus changed: no registry field", e);
            }
        }

        @Override
        public void close() {
            server.stop();
            super.close();
        }
    }
}
