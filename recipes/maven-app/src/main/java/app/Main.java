package app;

import org.apache.commons.lang3.StringUtils;

public final class Main {
    public static void main(String[] args) {
        System.out.println("maven-app: " + StringUtils.capitalize("hello") + " " + StringUtils.repeat('*', 3));
    }
}
