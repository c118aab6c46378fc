-- The Mercado Pago point of sale of the kiosk an order was placed at; NULL
-- for orders from elsewhere (paid at the payment service's default one).
ALTER TABLE orders ADD COLUMN point_of_sale text;
