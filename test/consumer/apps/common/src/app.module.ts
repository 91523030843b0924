import { Module } from '@nestjs/common';
import { SessionModule } from 'nestjs-session-sync';
import { AuthController } from './auth.controller.js';
import { RequestTypingController } from './request-typing.controller.js';

@Module({
  imports: [SessionModule.forRoot({ secret: process.env.SESSION_SECRET! })], // 32+ characters
  controllers: [AuthController, RequestTypingController],
})
export class AppModule {}
